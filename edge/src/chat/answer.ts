// One admitted chat completion: the completions path (completions/completion.ts) with the
// conversation as its prompt, the template's turn markers among its stops, chat's objects in
// its answer, and errors naming the chat request's fields.

import { ApiError } from '../../../shared/src/errors.ts';
import type { AdmittedRequest } from '../completions/admit.ts';
import { answerCompletion } from '../completions/completion.ts';
import { type CompletionParams, parseCompletionParams } from '../completions/params.ts';
import { loadTokenizer } from '../tokenizer.ts';
import { CHAT_COMPLETION } from './format.ts';
import { translateChat } from './request.ts';

/** An error about a completions field, told in the chat field it came from. */
function renamed(err: unknown, fieldOf: Record<string, string>): unknown {
  if (!(err instanceof ApiError) || err.param === null) return err;
  const field = fieldOf[err.param];
  if (field === undefined) return err;
  return new ApiError(err.status, err.type, err.message.replaceAll(`'${err.param}'`, `'${field}'`), {
    param: field,
    code: err.code,
    headers: err.headers,
  });
}

export async function answerChat(input: AdmittedRequest): Promise<Response> {
  const template = input.settings.chatTemplate;
  // Set once translated: the chat request's own errors already name its fields.
  let fieldOf: Record<string, string> = {};
  const readParams = async (body: unknown): Promise<CompletionParams> => {
    const chat = translateChat(body, template, await loadTokenizer());
    fieldOf = chat.fieldOf;
    return parseCompletionParams(chat.body, input.settings);
  };
  try {
    // The turn markers end the reply, on top of the client's own stops.
    return await answerCompletion({
      ...input,
      readParams,
      shape: CHAT_COMPLETION,
      extraStops: template.stop,
    });
  } catch (err) {
    throw renamed(err, fieldOf);
  }
}
