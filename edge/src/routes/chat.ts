// POST /v1/chat/completions: admit the key, then answer as a completion of the conversation's
// prompt (chat/request.ts) in chat's objects (chat/format.ts).

import type { Context } from 'hono';
import type { AppEnv } from '../app-env.ts';
import { answerChat } from '../chat/answer.ts';
import { admitRequest } from '../completions/admit.ts';

export async function chatCompletions(c: Context<AppEnv>): Promise<Response> {
  return answerChat(await admitRequest(c));
}
