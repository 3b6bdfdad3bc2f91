// CORS for browser clients of /v1: origins allowed by CORS_ALLOWED_ORIGINS get Access-Control
// headers, and preflights (OPTIONS) are answered here, before authentication, since browsers
// send them without the Authorization header. The admin API stays out of reach of pages. Keys travel as bearer tokens, never cookies, so credentials
// are never allowed (and `*` stays a plain wildcard).

import type { Context } from 'hono';
import { cors } from 'hono/cors';
import type { AppEnv } from '../app-env.ts';
import { edgeSettings } from '../settings.ts';

/** What a page may read of an answer: its id, the rate limits and when to retry. */
const EXPOSED = [
  'x-request-id',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
  'retry-after',
  'x-should-retry',
];

/** The Access-Control-Allow-Origin for a request's Origin, or null (no CORS headers). */
function allowedOrigin(origin: string, c: Context<AppEnv>): string | null {
  if (!origin) return null; // not a cross-origin browser request: the settings are not needed
  const allowed = edgeSettings(c.env).corsOrigins;
  if (allowed === '*') return '*';
  return allowed.includes(origin) ? origin : null;
}

export const corsPolicy = cors({
  origin: allowedOrigin,
  allowMethods: ['GET', 'POST', 'OPTIONS'],
  // Unset: the headers a preflight asks for are allowed (the official clients send x-stainless-*).
  allowHeaders: [],
  exposeHeaders: EXPOSED,
  maxAge: 600,
  credentials: false,
});
