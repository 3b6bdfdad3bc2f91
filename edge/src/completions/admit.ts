// The first steps every generating route shares: the key is admitted by its limiter while the
// body arrives; the body is parsed and tokenized only once the key is admitted, so a refused key
// costs no more than the limiter's answer.

import type { Context } from 'hono';
import type { AppEnv } from '../app-env.ts';
import { readBodyText } from '../http/json-body.ts';
import { Admission } from '../limits/admission.ts';
import { edgeSettings } from '../settings.ts';
import type { CompletionInput } from './completion.ts';

export type AdmittedRequest = Omit<CompletionInput, 'readParams' | 'shape' | 'extraStops'>;

export async function admitRequest(c: Context<AppEnv>): Promise<AdmittedRequest> {
  const settings = edgeSettings(c.env);
  const bodyText = readBodyText(c.req.raw, settings.maxBodyBytes);
  bodyText.catch(() => undefined); // a refusal answers without waiting for it
  const key = c.get('apiKey');
  const admission = await Admission.admit(c.env, key);
  c.set('rateHeaders', admission.headers);
  return {
    settings,
    admission,
    bodyText,
    clientSignal: c.req.raw.signal,
    ctx: c.executionCtx,
    onReserved: (headers) => c.set('rateHeaders', headers),
    keyId: key.id,
  };
}
