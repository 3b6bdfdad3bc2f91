// A stand-in for the GPU function that speaks the real wire protocol (signed POST /v1/generate,
// NDJSON frames) over real HTTP on loopback, with deterministic output: it "generates" the
// prompt's ids again, cyclically, so a test knows the completion text from the prompt alone
// (sample j of a prompt starts j ids further on, so the n samples differ; every choice gets
// a tokens frame per step, tagged with its index when the request has more than one).
//
// A path prefix picks the behaviour, e.g. GPU_FUNCTION_URL = http://127.0.0.1:PORT/s/delay=20,fail=3
//   delay=MS        pause between token frames          chunk=K       ids per token frame
//   eos=N           finish 'eos' after N tokens          fail=N        done frame with 'error' after N
//   drop=N          cut the connection after N tokens    stall=N       go silent after N tokens
//   heartbeats=K    K 'loading' heartbeats first         status=CODE   answer CODE with an error body
//   code=X          with status: the body's error code   retry=S       with status: Retry-After S
//   junk=N          a frame of an unknown type after N tokens
//   cold=NAME:MS    503 + Retry-After until MS after the first request named NAME
//   tag=NAME        only labels the request in the log
// GET /log returns what each request did (tokens sent, how it ended), for cancellation checks.
// POST /control/listen-later/MS answers the URL of a port that starts listening MS from now.
// POST /control/prompt/ID/OPTS gives requests whose prompt starts with token ID the scenario OPTS
// (for callers that cannot choose the URL, e.g. through the worker's own binding).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type GenerateRequest, parseGenerateRequest } from '../../../shared/src/protocol/generate.ts';
import { encodeFrame } from '../../../shared/src/protocol/ndjson.ts';
import { NonceCache, verifyRequest } from '../../../shared/src/signing.ts';

export interface LogEntry {
  path: string;
  tag: string | null;
  status: number;
  tokensSent: number;
  outcome: 'done' | 'client_closed' | 'dropped' | 'refused' | 'stalled';
  /** The sampling temperature the request asked for (once parsed). */
  temperature?: number;
}

export interface WireBackend {
  url: string;
  log: LogEntry[];
  /** A URL whose port starts listening after `delayMs` (connections are refused until then). */
  listenLater(delayMs: number): Promise<string>;
  close(): Promise<void>;
}

type Scenario = Record<string, string>;

function parseScenario(path: string): { scenario: Scenario; route: string } {
  const m = /^\/s\/([^/]*)(\/.*)$/.exec(path);
  if (!m) return { scenario: {}, route: path };
  const scenario: Scenario = {};
  for (const part of decodeURIComponent(m[1]!).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) scenario[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return { scenario, route: m[2]! };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readBody(req: IncomingMessage): Promise<Uint8Array<ArrayBuffer>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
  code: string | null = null,
) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ error: { message, type: 'server_error', param: null, code } }));
}

const coldSince = new Map<string, number>();
/** Scenarios by the first id of the prompt (see /control/prompt). */
const byFirstId = new Map<number, Scenario>();

function sendJson(res: ServerResponse, value: unknown) {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

/** Cloud Run's invoker check: whether a request's Authorization header may call `audience`. */
export type InvokerCheck = (authorization: string | undefined, audience: string) => boolean;

function createHandler(
  secret: string,
  log: LogEntry[],
  listenLater: (delayMs: number) => Promise<string>,
  invoker: InvokerCheck | undefined,
) {
  const nonces = new NonceCache();
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    if (req.method === 'GET' && path === '/log') return sendJson(res, log);
    const later = /^\/control\/listen-later\/(\d+)$/.exec(path);
    if (req.method === 'POST' && later) return sendJson(res, { url: await listenLater(Number(later[1])) });
    const byPrompt = /^\/control\/prompt\/(\d+)\/([^/]+)$/.exec(path);
    if (req.method === 'POST' && byPrompt) {
      byFirstId.set(Number(byPrompt[1]), parseScenario(`/s/${byPrompt[2]}/`).scenario);
      return sendJson(res, {});
    }
    const { scenario, route } = parseScenario(path);
    if (req.method !== 'POST' || route !== '/v1/generate') return sendError(res, 404, 'not found');
    const entry: LogEntry = {
      path,
      tag: scenario.tag ?? null,
      status: 200,
      tokensSent: 0,
      outcome: 'refused',
    };
    log.push(entry);
    const body = await readBody(req);
    const fail = (
      status: number,
      message: string,
      headers: Record<string, string> = {},
      code: string | null = null,
    ) => {
      entry.status = status;
      sendError(res, status, message, headers, code);
    };

    // In front of the function, as Cloud Run's IAM is: no valid ID token, no request.
    if (invoker && !invoker(req.headers.authorization, `http://${req.headers.host}`)) {
      return fail(401, 'invoker token missing or refused');
    }
    const headers = { get: (name: string) => req.headers[name]?.toString() ?? null };
    const bad = await verifyRequest(
      secret,
      'POST',
      `http://${req.headers.host}${path}`,
      headers,
      body,
      nonces,
    );
    if (bad) return fail(401, `signature: ${bad}`);
    if (scenario.status) {
      const retry: Record<string, string> = scenario.retry ? { 'retry-after': scenario.retry } : {};
      return fail(Number(scenario.status), 'scripted failure', retry, scenario.code ?? null);
    }
    if (scenario.cold) {
      const [name, ms] = scenario.cold.split(':');
      const since = coldSince.get(name!) ?? Date.now();
      coldSince.set(name!, since);
      if (Date.now() - since < Number(ms)) return fail(503, 'starting', { 'retry-after': '1' });
    }
    let request: GenerateRequest;
    let firstId: unknown;
    try {
      const json = JSON.parse(new TextDecoder().decode(body)) as {
        prompt_ids?: unknown[];
        prompts?: unknown[][];
      };
      firstId = json.prompt_ids?.[0] ?? json.prompts?.[0]?.[0];
      request = parseGenerateRequest(json);
    } catch (err) {
      return fail(400, err instanceof Error ? err.message : String(err));
    }
    entry.temperature = request.sampling.temperature;
    const scripted = typeof firstId === 'number' ? byFirstId.get(firstId) : undefined;
    if (scripted) {
      Object.assign(scenario, scripted);
      entry.tag = scenario.tag ?? null;
    }
    await stream(request, scenario, res, entry);
  };
}

async function stream(request: GenerateRequest, s: Scenario, res: ServerResponse, entry: LogEntry) {
  let closed = false;
  res.on('close', () => {
    if (!res.writableFinished) closed = true;
  });
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  const write = (frame: unknown) => res.write(encodeFrame(frame));
  const num = (k: string) => (s[k] === undefined ? undefined : Number(s[k]));

  for (let i = 0; i < (num('heartbeats') ?? 0); i++) {
    write({ type: 'heartbeat', phase: 'loading' });
    await sleep(num('delay') ?? 20);
  }
  const chunk = num('chunk') ?? 1;
  const choices = request.prompts.length * request.n;
  // Log-probabilities, made up but checkable: id i scores -(i % 7 + 1) / 10, its alternatives
  // are i (first) and then i + 1, i + 2, ... one less each.
  const k = request.output.logprobs;
  const score = (id: number) => {
    const lp = -((id % 7) + 1) / 10;
    const top: [number, number][] = Array.from({ length: k ?? 0 }, (_, j) => [id + j, lp - j]);
    return { logprob: lp, top };
  };
  if (request.output.score_prompt) {
    request.prompts.forEach((ids, prompt) => {
      write({ type: 'prompt', prompt, logprobs: ids.map((id, i) => (i === 0 ? null : score(id))) });
    });
  }
  let finish: 'length' | 'eos' | 'error' = 'length';
  while (entry.tokensSent < request.stopping.max_new_tokens) {
    if (closed) {
      entry.outcome = 'client_closed';
      return;
    }
    const n = entry.tokensSent;
    if (n === num('eos')) {
      finish = 'eos';
      break;
    }
    if (n === num('fail')) {
      finish = 'error';
      break;
    }
    if (n === num('drop')) {
      entry.outcome = 'dropped';
      res.socket?.destroy();
      return;
    }
    if (n === num('junk')) {
      write({ type: 'mystery', ids: 'none' });
      entry.outcome = 'done';
      res.end();
      return;
    }
    if (n === num('stall')) {
      entry.outcome = 'stalled';
      return; // leaves the response open and silent
    }
    const count = Math.min(chunk, request.stopping.max_new_tokens - n);
    for (let index = 0; index < choices; index++) {
      const prompt = request.prompts[Math.floor(index / request.n)] as number[];
      const j = index % request.n;
      const ids = Array.from({ length: count }, (_, k) => prompt[(n + k + j) % prompt.length]!);
      write({
        type: 'tokens',
        ...(choices > 1 ? { index } : {}),
        ids,
        ...(k === undefined ? {} : { logprobs: ids.map(score) }),
      });
    }
    entry.tokensSent += count;
    const delay = num('delay');
    if (delay) await sleep(delay);
    else await new Promise((r) => setImmediate(r)); // let a disconnect be noticed between frames
  }
  write({
    type: 'done',
    finish_reason: finish,
    prompt_tokens: request.prompts.reduce((sum, p) => sum + p.length, 0),
    completion_tokens: entry.tokensSent * choices,
    ...(choices > 1
      ? {
          choices: Array.from({ length: choices }, (_, index) => ({
            index,
            finish_reason: finish,
            completion_tokens: entry.tokensSent,
          })),
        }
      : {}),
    timings: { queue_ms: 0, load_ms: 0, prefill_ms: 0, decode_ms: 0, total_ms: 0 },
    ...(finish === 'error' ? { error: { message: 'scripted failure', code: 'internal_error' } } : {}),
  });
  res.end();
  entry.outcome = 'done';
}

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startWireBackend(
  secret: string,
  options: { invoker?: InvokerCheck } = {},
): Promise<WireBackend> {
  const log: LogEntry[] = [];
  const servers: Server[] = [];
  const listenLater = async (delayMs: number) => {
    // Reserve a free port, release it, and take it again later: connections are refused meanwhile.
    const probe = createServer();
    const later = await listen(probe);
    await new Promise((r) => probe.close(r));
    setTimeout(() => void listen(serve(), later), delayMs);
    return `http://127.0.0.1:${later}`;
  };
  const handler = createHandler(secret, log, listenLater, options.invoker);
  const serve = () => {
    const server = createServer((req, res) => {
      handler(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendError(res, 500, String(err));
        else res.destroy();
      });
    });
    servers.push(server);
    return server;
  };
  const port = await listen(serve());
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    listenLater,
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise((r) => {
              s.closeAllConnections();
              s.close(r);
            }),
        ),
      );
    },
  };
}
