// Newline-delimited JSON frames: one JSON value per line. Used for the generation stream.

const encoder = new TextEncoder();

export function encodeFrame(frame: unknown): Uint8Array {
  return encoder.encode(`${JSON.stringify(frame)}\n`);
}

/** Splits a byte stream into parsed JSON lines; a trailing partial line is an error (truncated stream). */
export async function* readFrames<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffered = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() !== '') yield JSON.parse(line) as T;
        nl = buffered.indexOf('\n');
      }
    }
    buffered += decoder.decode();
    if (buffered.trim() !== '') throw new Error('generation stream ended in the middle of a frame');
  } finally {
    reader.releaseLock();
  }
}
