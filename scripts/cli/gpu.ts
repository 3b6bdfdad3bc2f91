// `npm run -s cli -- gpu readyz|metrics [--url URL]`: the GPU function's readiness and metrics,
// which answer only requests signed with GPU_HMAC_SECRET (as the edge signs them). For a
// deployment behind Cloud Run's invoker IAM, GPU_ID_TOKEN carries an identity token too
// (`gcloud auth print-identity-token`).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { signRequest } from '../../shared/src/signing.ts';
import { parseDevVars } from '../lib/stack/secrets.ts';

const DEFAULT_URL = 'http://127.0.0.1:8788';

const USAGE = `usage: npm run -s cli -- gpu readyz|metrics [--url URL]

  readyz    the model's state (exit 0 when ready, 1 otherwise)
  metrics   the Prometheus metrics

  --url URL  the GPU function (env GPU_FUNCTION_URL; default ${DEFAULT_URL})
environment: GPU_HMAC_SECRET (else from .dev.vars, as the local stack writes it);
             GPU_ID_TOKEN, sent as a bearer token (Cloud Run invoker IAM)
`;

function secretFromDevVars(file = path.resolve('.dev.vars')): string | undefined {
  return existsSync(file) ? parseDevVars(readFileSync(file, 'utf8')).get('GPU_HMAC_SECRET') : undefined;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: args.slice(1),
    allowPositionals: true,
    options: { url: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [what, ...extra] = positionals;
  if (values.help || (what !== 'readyz' && what !== 'metrics') || extra.length > 0) {
    process.stderr.write(USAGE);
    return values.help ? 0 : 2;
  }
  const secret = process.env.GPU_HMAC_SECRET || secretFromDevVars();
  if (!secret) {
    process.stderr.write('error: set GPU_HMAC_SECRET (the value the edge and the GPU function share)\n');
    return 2;
  }
  const base = (values.url ?? process.env.GPU_FUNCTION_URL ?? DEFAULT_URL).replace(/\/+$/, '');
  const url = `${base}/${what}`;
  const token = process.env.GPU_ID_TOKEN;
  const headers = {
    ...(await signRequest(secret, 'GET', url, new Uint8Array(0))),
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
  let res: Response;
  try {
    res = await fetch(url, { headers });
  } catch {
    process.stderr.write(`error: cannot reach ${base}\n`);
    return 1;
  }
  const text = await res.text();
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  if (res.status === 401 || res.status === 403) {
    process.stderr.write(
      `refused (HTTP ${res.status}): check GPU_HMAC_SECRET, and GPU_ID_TOKEN behind IAM\n`,
    );
  }
  return res.ok ? 0 : 1;
}
