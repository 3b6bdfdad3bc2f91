// A stand-in for Google's OAuth token endpoint and for Cloud Run's invoker check, on loopback.
// It holds a real RSA key pair: the Worker gets a service-account key file whose token_uri points
// here, signs its JWT assertions with the private key, and this server verifies them with the
// public key (RS256, iss/sub, aud, target_audience, lifetime) before it issues an ID token for the
// asked audience. The wire backend then accepts only tokens issued here, for its own origin.
//
//   POST /token                          the jwt-bearer exchange ({"id_token"})
//   GET  /control/stats                  {"exchanges", "refused"}
//   POST /control/lifetime/S             later tokens expire S seconds after they are issued
//   POST /control/revoke                 every token issued so far stops being accepted
//   POST /control/fail/N                 the next N exchanges answer 400 invalid_grant

import { generateKeyPairSync, type KeyObject, randomBytes, verify } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenServer {
  url: string;
  /** The service-account key file (JSON) the Worker is configured with. */
  keyJson: string;
  /** Whether `authorization` carries a valid token for `audience` (the receiving origin). */
  accepts(authorization: string | undefined, audience: string): boolean;
  close(): Promise<void>;
}

const CLIENT_EMAIL = 'jslm-gpu-function-invoker@test-project.iam.gserviceaccount.com';
const KEY_ID = 'test-key-1';

const b64url = (v: Buffer | string) => Buffer.from(v).toString('base64url');
const fromB64url = (s: string) => Buffer.from(s, 'base64url');

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.on('data', (c: Buffer) => {
      text += c.toString();
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, value: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

/** Checks a JWT assertion as Google's token endpoint does; returns its target audience or why not. */
function checkAssertion(
  assertion: string,
  publicKey: KeyObject,
  tokenUri: string,
): string | { error: string } {
  const parts = assertion.split('.');
  if (parts.length !== 3) return { error: 'not a JWT' };
  const [h, c, s] = parts as [string, string, string];
  const header = JSON.parse(fromB64url(h).toString()) as Record<string, unknown>;
  if (header.alg !== 'RS256' || header.kid !== KEY_ID) return { error: 'bad header' };
  if (!verify('sha256', Buffer.from(`${h}.${c}`), publicKey, fromB64url(s)))
    return { error: 'bad signature' };
  const claims = JSON.parse(fromB64url(c).toString()) as Record<string, unknown>;
  const now = Date.now() / 1000;
  if (claims.iss !== CLIENT_EMAIL || claims.sub !== CLIENT_EMAIL) return { error: 'bad issuer' };
  if (claims.aud !== tokenUri) return { error: 'bad aud' };
  if (typeof claims.iat !== 'number' || Math.abs(claims.iat - now) > 60) return { error: 'bad iat' };
  if (typeof claims.exp !== 'number' || claims.exp - claims.iat > 3600 || claims.exp < now)
    return { error: 'bad exp' };
  if (typeof claims.target_audience !== 'string' || claims.target_audience === '')
    return { error: 'no target_audience' };
  return claims.target_audience;
}

export async function startTokenServer(): Promise<TokenServer> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const issued = new Map<string, { audience: string; expMs: number }>();
  let lifetimeS = 3600;
  let failNext = 0;
  const stats = { exchanges: 0, refused: 0 };
  let tokenUri = '';

  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/';
      if (req.method === 'GET' && path === '/control/stats') return json(res, 200, stats);
      const control = /^\/control\/(lifetime|fail)\/(\d+)$/.exec(path);
      if (req.method === 'POST' && control) {
        if (control[1] === 'lifetime') lifetimeS = Number(control[2]);
        else failNext = Number(control[2]);
        return json(res, 200, {});
      }
      if (req.method === 'POST' && path === '/control/revoke') {
        issued.clear();
        return json(res, 200, {});
      }
      if (req.method !== 'POST' || path !== '/token') return json(res, 404, { error: 'not_found' });
      const form = new URLSearchParams(await readBody(req));
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
        return json(res, 400, { error: 'unsupported_grant_type' });
      }
      const audience = checkAssertion(form.get('assertion') ?? '', publicKey, tokenUri);
      if (typeof audience !== 'string' || failNext > 0) {
        failNext = Math.max(0, failNext - 1);
        stats.refused++;
        return json(res, 400, {
          error: 'invalid_grant',
          error_description: typeof audience === 'string' ? 'scripted' : audience.error,
        });
      }
      stats.exchanges++;
      const iat = Math.floor(Date.now() / 1000);
      const exp = iat + lifetimeS;
      const token = [
        b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' })),
        b64url(JSON.stringify({ aud: audience, email: CLIENT_EMAIL, iat, exp })),
        b64url(randomBytes(32)),
      ].join('.');
      issued.set(token, { audience, expMs: exp * 1000 });
      return json(res, 200, { id_token: token });
    })().catch((err: unknown) => json(res, 500, { error: String(err) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tokenUri = `${url}/token`;

  const keyJson = JSON.stringify({
    type: 'service_account',
    project_id: 'test-project',
    private_key_id: KEY_ID,
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    client_email: CLIENT_EMAIL,
    client_id: '1',
    token_uri: tokenUri,
  });

  return {
    url,
    keyJson,
    accepts(authorization, audience) {
      const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
      const entry = token ? issued.get(token) : undefined;
      return entry !== undefined && entry.audience === audience && entry.expMs > Date.now();
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
