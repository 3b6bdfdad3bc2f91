// x-request-id on every answer, errors and preflights included: the client's own if it sent a
// sane one (echoed, so its logs and ours share the id), else a new one. Logs of the request
// carry it (index.ts).

import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env.ts';

/** A client's id is echoed only if it is short and plain (it ends up in headers and logs). */
const SANE_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/;

export function newRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `req_${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export const requestId = createMiddleware<AppEnv>(async (c, next) => {
  const sent = c.req.header('x-request-id');
  const id = sent !== undefined && SANE_ID.test(sent) ? sent : newRequestId();
  c.set('requestId', id);
  await next();
  c.header('x-request-id', id);
});
