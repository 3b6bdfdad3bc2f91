// POST /v1/chat/completions: admit the key, then answer as a completion of the conversation's
// prompt (chat/request.ts) in chat's objects (chat/format.ts).

import type { Context } from 'hono';
import type { AppEnv } from '../app-env.ts';
import { answerChat } from '../chat/answer.ts';
import { readBodyText } from '../http/json-body.ts';
import { Admission } from '../limits/admission.ts';
import { edgeSettings } from '../settings.ts';

export async function chatCompletions(c: Context<AppEnv>): Promise<Response> {
  const settings = edgeSettings(c.env);
  const bodyText = readBodyText(c.req.raw, settings.maxBodyBytes);
  bodyText.catch(() => undefined); // a refusal answers without waiting for it
  const key = c.get('apiKey');
  const admission = await Admission.admit(c.env, key);
  c.set('rateHeaders', admission.headers);
  return answerChat({
    settings,
    admission,
    bodyText,
    clientSignal: c.req.raw.signal,
    ctx: c.executionCtx,
    onReserved: (headers) => c.set('rateHeaders', headers),
    keyId: key.id,
  });
}
