// What `npm start` prints once everything is up: what runs where, the key, a request to paste.
import path from 'node:path';
import { MODEL_ID } from '../../../shared/src/model-facts.ts';
import type { Stack } from './stack.ts';

/** A completions request for the shell, single-quoted so it pastes as it is. */
export function curlExample(stack: Pick<Stack, 'edgeUrl' | 'apiKey'>): string {
  const body = JSON.stringify({ model: MODEL_ID, prompt: 'AIによって私達の暮らしは、', max_tokens: 32 });
  return [
    `curl ${stack.edgeUrl}/v1/completions \\`,
    `  -H 'Authorization: Bearer ${stack.apiKey.key}' \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d '${body}'`,
  ].join('\n');
}

export function readyBanner(stack: Stack, dataDir: string): string {
  const rel = path.relative(process.cwd(), dataDir) || '.';
  const rows: [string, string][] = [
    ['API (edge, wrangler dev)', `${stack.edgeUrl}/v1`],
    [
      'GPU function (supervisor)',
      `${stack.gpuUrl}  starts on the first request, exits after ${stack.idleTimeoutS} s idle`,
    ],
    ['object storage (s3rver)', `${stack.s3Endpoint}  bucket ${stack.bucket}, model ${stack.model.uri}`],
    ['data', `${rel}/ (keys, limits, objects, weight cache; delete it to start afresh)`],
    ['model', stack.model.label],
  ];
  if (stack.model.kind === 'demo') {
    rows.push(['', 'real weights: see "Real weights" in README.md (MODEL_CHECKPOINT=DIR npm start)']);
  }
  const keyNote =
    stack.apiKey.source === 'LOCAL_API_KEY' ? 'from LOCAL_API_KEY' : 'set LOCAL_API_KEY to fix it';
  rows.push(['API key', `${stack.apiKey.key}  (${keyNote})`]);
  if (stack.apiKey.state === 'revoked') rows.push(['', 'this key is REVOKED: see the warning above']);
  const width = Math.max(...rows.map(([k]) => k.length));
  const rule = '─'.repeat(78);
  return [
    rule,
    ` The local stack is ready (${(stack.startMs / 1000).toFixed(1)} s)`,
    '',
    ...rows.map(([k, v]) => `   ${k.padEnd(width)}  ${v}`),
    '',
    ' Try it (the first request starts the GPU function and loads the model: a few seconds):',
    '',
    curlExample(stack)
      .split('\n')
      .map((l) => `   ${l}`)
      .join('\n'),
    '',
    ' Add "stream": true for server-sent events. Any OpenAI client works with the base URL above.',
    ' Keys: npm run -s cli -- keys list | create --name NAME | revoke ID        Stop: Ctrl-C',
    rule,
  ].join('\n');
}
