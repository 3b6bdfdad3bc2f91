// The chat template: how a conversation becomes one prompt for the base model. The model was
// never tuned to follow turns, so the default is a plain-text transcript it continues, and the
// next turn's marker is a stop sequence that ends the assistant's reply.

import { SettingsError } from '../../../shared/src/config.ts';
import { isPlainObject } from '../http/fields.ts';
import type { ChatMessage } from './messages.ts';

export interface ChatTemplate {
  /** Put first when the messages hold no system message ('' for nothing). */
  default_system: string;
  system_prefix: string;
  system_suffix: string;
  user_prefix: string;
  user_suffix: string;
  /** Also what the prompt ends with: the model writes the assistant's turn after it. */
  assistant_prefix: string;
  assistant_suffix: string;
  /** Where the model would start another speaker's turn: the reply ends there. */
  stop: string[];
}

/** The default (CHAT_TEMPLATE=dialogue): a Japanese transcript, one line a turn. */
export const DIALOGUE_TEMPLATE: Readonly<ChatTemplate> = {
  default_system: '以下は、ユーザーとAIアシスタントの会話です。',
  system_prefix: '',
  system_suffix: '\n\n',
  user_prefix: 'ユーザー：',
  user_suffix: '\n',
  assistant_prefix: 'アシスタント：',
  assistant_suffix: '\n',
  // The model may write the colon either way.
  stop: ['\nユーザー：', '\nユーザー:'],
};

const TEXT_FIELDS = [
  'default_system',
  'system_prefix',
  'system_suffix',
  'user_prefix',
  'user_suffix',
  'assistant_prefix',
  'assistant_suffix',
] as const;
/** A template's stops are added to the client's: few and short, like theirs. */
const MAX_TEMPLATE_STOPS = 4;
const MAX_TEMPLATE_STOP_LENGTH = 64;

/**
 * CHAT_TEMPLATE: `dialogue`, or a JSON object whose fields replace the dialogue template's
 * (`{"default_system": ""}` drops the opening line). Anything else is a settings error.
 */
export function parseChatTemplate(setting: string): ChatTemplate {
  const value = setting.trim();
  if (value === 'dialogue') return { ...DIALOGUE_TEMPLATE, stop: [...DIALOGUE_TEMPLATE.stop] };
  const fail = (why: string) => new SettingsError(`CHAT_TEMPLATE ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    throw fail("must be 'dialogue' or a JSON object of template fields");
  }
  if (!isPlainObject(raw)) throw fail('must be a JSON object');
  const template: ChatTemplate = { ...DIALOGUE_TEMPLATE, stop: [...DIALOGUE_TEMPLATE.stop] };
  for (const [field, v] of Object.entries(raw)) {
    if (field === 'stop') {
      const ok =
        Array.isArray(v) &&
        v.length <= MAX_TEMPLATE_STOPS &&
        v.every((s) => typeof s === 'string' && s !== '' && s.length <= MAX_TEMPLATE_STOP_LENGTH);
      if (!ok) {
        throw fail(
          `stop must be an array of at most ${MAX_TEMPLATE_STOPS} non-empty strings of at most ${MAX_TEMPLATE_STOP_LENGTH} characters`,
        );
      }
      template.stop = v as string[];
    } else if ((TEXT_FIELDS as readonly string[]).includes(field)) {
      if (typeof v !== 'string') throw fail(`field ${field} must be a string`);
      template[field as (typeof TEXT_FIELDS)[number]] = v;
    } else {
      throw fail(`has an unknown field ${JSON.stringify(field.slice(0, 40))}`);
    }
  }
  return template;
}

/**
 * The prompt of a conversation: every message between its role's prefix and suffix, then the
 * assistant's prefix. A conversation that ends with an assistant message is continued: that
 * message is left open (no suffix) and the reply carries on from it.
 */
export function renderChat(messages: readonly ChatMessage[], template: ChatTemplate): string {
  let prompt = '';
  if (template.default_system !== '' && !messages.some((m) => m.role === 'system')) {
    prompt += template.system_prefix + template.default_system + template.system_suffix;
  }
  const last = messages.length - 1;
  messages.forEach((m, i) => {
    const prefix = template[`${m.role}_prefix`];
    const open = i === last && m.role === 'assistant';
    prompt += prefix + m.content + (open ? '' : template[`${m.role}_suffix`]);
  });
  if (messages[last]?.role !== 'assistant') prompt += template.assistant_prefix;
  return prompt;
}
