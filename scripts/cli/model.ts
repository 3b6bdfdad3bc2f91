// Model commands. `logits` lives here; `convert` and `generate` are dispatched to their own
// modules (scripts/cli/convert.ts, scripts/cli/generate.ts) so each can change independently.
//
//   npm run -s cli -- logits --model DIR --ids 5,6,7 [--positions 0,7,300] [--threads N]
//     prints one JSON array of all vocab_size logits per input position, one line each,
//     and nothing else on stdout. Positions default to 0..n-1.

import { parseArgs } from 'node:util';
import { ModelConfigError } from '../../gpu-function/src/model/config.ts';
import {
  cpuSessionOptions,
  ForwardInputError,
  openForwardSession,
} from '../../gpu-function/src/model/forward-session.ts';

const LOGITS_USAGE = `usage: npm run -s cli -- logits --model DIR --ids 5,6,7 [--positions 0,7,300] [--threads N]
  DIR is a converter output folder (config.json + forward.onnx + weights)
`;

/** Commands implemented in sibling modules; resolved at run time so this file does not depend on them. */
const DELEGATED: Record<string, string> = {
  convert: './convert.ts',
  generate: './generate.ts',
};

interface CommandModule {
  run(args: string[]): Promise<number | undefined> | number | undefined;
}

export async function run(args: string[]): Promise<number | undefined> {
  const command = args[0] ?? '';
  const delegate = DELEGATED[command];
  if (delegate) {
    let mod: CommandModule;
    try {
      mod = (await import(delegate)) as CommandModule;
    } catch (err) {
      const missing = (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND';
      if (!missing || !String((err as Error).message).includes(delegate.slice(2))) throw err;
      process.stderr.write(`'${command}' is not available in this build\n`);
      return 2;
    }
    return mod.run(args);
  }
  if (command === 'logits') return logits(args.slice(1));
  process.stderr.write(`unknown model command '${command}'\n`);
  return 2;
}

/** Parses "5,6,7" into integers; throws a ForwardInputError naming the flag when malformed. */
function parseIntList(flag: string, text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const values = parts.map((s) => (/^-?\d+$/.test(s) ? Number(s) : Number.NaN));
  const bad = parts.find((_, i) => !Number.isSafeInteger(values[i]));
  if (bad !== undefined) throw new ForwardInputError(`--${flag}: '${bad}' is not an integer`);
  return values;
}

async function logits(argv: string[]): Promise<number> {
  let values: { model?: string; ids?: string; positions?: string; threads?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        ids: { type: 'string' },
        positions: { type: 'string' },
        threads: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${LOGITS_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stderr.write(LOGITS_USAGE);
    return 0;
  }
  if (!values.model || !values.ids) {
    process.stderr.write(`logits needs --model and --ids\n\n${LOGITS_USAGE}`);
    return 2;
  }
  try {
    const ids = parseIntList('ids', values.ids);
    const positions =
      values.positions === undefined ? undefined : parseIntList('positions', values.positions);
    if (positions && positions.length !== ids.length) {
      throw new ForwardInputError(`--positions has ${positions.length} entries for ${ids.length} ids`);
    }
    const threads = values.threads === undefined ? 1 : Number(values.threads);
    if (!Number.isInteger(threads) || threads < 1)
      throw new ForwardInputError('--threads must be a positive integer');

    const session = await openForwardSession(values.model, cpuSessionOptions(threads));
    try {
      const { logits } = await session.run({
        inputIds: [ids],
        ...(positions ? { positionIds: [positions] } : {}),
      });
      const V = session.config.vocabSize;
      for (let t = 0; t < ids.length; t++) {
        process.stdout.write(`${JSON.stringify(Array.from(logits.subarray(t * V, (t + 1) * V)))}\n`);
      }
    } finally {
      await session.release();
    }
    return 0;
  } catch (err) {
    if (err instanceof ForwardInputError || err instanceof ModelConfigError || err instanceof SyntaxError) {
      process.stderr.write(`logits: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
