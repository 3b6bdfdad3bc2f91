// POST /v1/completions: admit the key, then answer (completions/completion.ts).

import type { Context } from 'hono';
import type { AppEnv } from '../app-env.ts';
import { admitRequest } from '../completions/admit.ts';
import { answerCompletion } from '../completions/completion.ts';

export async function completions(c: Context<AppEnv>): Promise<Response> {
  return answerCompletion(await admitRequest(c));
}
