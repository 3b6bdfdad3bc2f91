// The `messages` of a chat request, validated: text turns of a system, a user and an assistant.
// What a base model cannot do (tools, images, audio) is refused naming the field.

import { badRequest } from '../../../shared/src/errors.ts';
import { isPlainObject, preview, shortName, wellFormedString } from '../http/fields.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

const ROLES: Record<string, ChatMessage['role']> = {
  system: 'system',
  developer: 'system', // OpenAI's newer name for system instructions
  user: 'user',
  assistant: 'assistant',
};

/** Fields of a message that are accepted when absent or null (what clients send by default). */
const NULLABLE = new Set(['tool_calls', 'function_call', 'refusal', 'audio', 'tool_call_id']);

function content(v: unknown, role: ChatMessage['role'], param: string): string {
  if ((v === undefined || v === null) && role === 'assistant') return '';
  if (v === undefined || v === null) throw badRequest(`Missing required parameter: '${param}'.`, param);
  if (typeof v === 'string') return wellFormedString(v, param);
  if (!Array.isArray(v)) throw badRequest(`'${param}' must be a string or an array of text parts.`, param);
  return v
    .map((part, j) => {
      const at = `${param}[${j}]`;
      if (!isPlainObject(part)) throw badRequest(`'${at}' must be an object.`, at);
      if (part.type !== 'text') {
        throw badRequest(
          `'${at}.type' is ${preview(part.type)}; this text-only model takes parts of type 'text'.`,
          `${at}.type`,
        );
      }
      for (const key of Object.keys(part)) {
        if (key !== 'type' && key !== 'text') {
          throw badRequest(`Unrecognized argument in '${at}': ${shortName(key)}`, `${at}.${shortName(key)}`);
        }
      }
      return wellFormedString(part.text, `${at}.text`);
    })
    .join('');
}

export function parseMessages(v: unknown): ChatMessage[] {
  if (v === undefined || v === null) throw badRequest("Missing required parameter: 'messages'.", 'messages');
  if (!Array.isArray(v)) throw badRequest("'messages' must be an array of messages.", 'messages');
  if (v.length === 0) throw badRequest("'messages' must not be empty.", 'messages');
  return v.map((m, i): ChatMessage => {
    const at = `messages[${i}]`;
    if (!isPlainObject(m)) throw badRequest(`'${at}' must be an object.`, at);
    const role = typeof m.role === 'string' ? ROLES[m.role] : undefined;
    if (!role) {
      const tools = m.role === 'tool' || m.role === 'function';
      throw badRequest(
        tools
          ? `'${at}.role' is ${preview(m.role)}: tool messages are not supported (this base model has no function calling).`
          : `'${at}.role' must be one of 'system', 'developer', 'user', 'assistant'; got ${preview(m.role)}.`,
        `${at}.role`,
      );
    }
    for (const [key, value] of Object.entries(m)) {
      if (key === 'role' || key === 'content' || key === 'name') continue;
      if (NULLABLE.has(key) && (value === null || (Array.isArray(value) && value.length === 0))) continue;
      throw badRequest(
        NULLABLE.has(key)
          ? `'${at}.${key}' is not supported by this text-only base model.`
          : `Unrecognized argument in '${at}': ${shortName(key)}`,
        `${at}.${shortName(key)}`,
      );
    }
    if (m.name !== undefined && m.name !== null) wellFormedString(m.name, `${at}.name`);
    return { role, content: content(m.content, role, `${at}.content`) };
  });
}
