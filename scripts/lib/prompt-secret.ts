// Asks for a secret on the terminal without echoing it: the way to pass a token that must not
// show up in the process list or the shell's history.

/** A terminal: what process.stdin is when it is a TTY. */
export interface SecretInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

/**
 * Reads one line from `input` with echo off, showing `question` on `output`. Resolves null when
 * `input` is not a terminal (nobody to ask) or the line is empty; rejects on Ctrl-C.
 */
export function promptSecret(
  question: string,
  input: SecretInput = process.stdin,
  output: NodeJS.WritableStream = process.stderr,
): Promise<string | null> {
  if (!input.isTTY || !input.setRawMode) return Promise.resolve(null);
  const setRaw = input.setRawMode.bind(input);
  output.write(question);
  setRaw(true);
  input.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (err: Error | null) => {
      input.removeListener('data', onData);
      setRaw(false);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(value === '' ? null : value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish(null);
        if (ch === '\u0003') return finish(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    input.on('data', onData);
  });
}
