import { readBodyBytes } from '../../../shared/src/body.ts';
import { badRequest } from '../../../shared/src/errors.ts';

const tooLarge = (max: number) =>
  badRequest(`The request body is larger than ${max} bytes.`, null, 'request_too_large');

/** Reads a body of at most `maxBytes` as UTF-8 text, stopping as soon as the limit is passed. */
export async function readBodyText(request: Request, maxBytes: number): Promise<string> {
  const bytes = await readBodyBytes(request, maxBytes, () => tooLarge(maxBytes));
  if (bytes.byteLength === 0) {
    throw badRequest('The request body is empty; send a JSON object.', null, 'invalid_json');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw badRequest('The request body is not valid UTF-8.', null, 'invalid_json');
  }
}

export function parseJsonText(text: string): unknown {
  if (text.trim() === '')
    throw badRequest('The request body is empty; send a JSON object.', null, 'invalid_json');
  try {
    return JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message.slice(0, 200) : 'parse error';
    throw badRequest(`The request body is not valid JSON (${reason}).`, null, 'invalid_json');
  }
}

/** Reads and parses a JSON body of at most `maxBytes`. */
export async function readJsonBody(request: Request, maxBytes: number): Promise<unknown> {
  return parseJsonText(await readBodyText(request, maxBytes));
}
