// POST /v1/completions: admit the key, then answer (completions/completion.ts).

import type { Context } from 'hono';
import type { AppEnv } from '../app-env.ts';
import { answerCompletion } from '../completions/completion.ts';
import { readBodyText } from '../http/json-body.ts';
import { Admission } from '../limits/admission.ts';
import { edgeSettings } from '../settings.ts';

export async function completions(c: Context<AppEnv>): Promise<Response> {
  const settings = edgeSettings(c.env);
  // The body arrives while the limiter is asked; it is parsed and tokenized only once the key
  // is admitted, so a refused key costs no more than the limiter's answer.
  const bodyText = readBodyText(c.req.raw, settings.maxBodyBytes);
  bodyText.catch(() => undefined); // a refusal answers without waiting for it
  const key = c.get('apiKey');
  const admission = await Admission.admit(c.env, key);
  c.set('rateHeaders', admission.headers);
  return answerCompletion({
    settings,
    admission,
    bodyText,
    clientSignal: c.req.raw.signal,
    ctx: c.executionCtx,
    onReserved: (headers) => c.set('rateHeaders', headers),
    keyId: key.id,
  });
}
