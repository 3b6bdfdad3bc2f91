import { basename } from 'node:path';
import { expectedTensors, IGNORED_TENSOR, type ModelConfig } from '../model/config.ts';
import { CheckpointError } from './errors.ts';
import type { TensorRef } from './tensor-ref.ts';

const LIST_AT_MOST = 5;

function listNames(names: string[]): string {
  const shown = names.slice(0, LIST_AT_MOST).map((n) => `'${n}'`);
  if (names.length > LIST_AT_MOST) shown.push(`and ${names.length - LIST_AT_MOST} more`);
  return shown.join(', ');
}

/**
 * Checks a checkpoint's tensors against what the config needs: nothing missing, nothing
 * unexpected (derived rotary buffers aside), every shape right. Returns them in the
 * canonical order of expectedTensors().
 */
export function validateTensors(
  config: ModelConfig,
  found: readonly TensorRef[],
  where: string,
): Map<string, TensorRef> {
  const byName = new Map<string, TensorRef>();
  for (const ref of found) {
    const other = byName.get(ref.name);
    if (other) {
      throw new CheckpointError(
        `${where}: tensor '${ref.name}' appears twice (${basename(other.file)} and ${basename(ref.file)})`,
      );
    }
    byName.set(ref.name, ref);
  }
  const expected = expectedTensors(config);
  for (const ref of byName.values()) {
    if (!expected.has(ref.name) && !IGNORED_TENSOR.test(ref.name)) {
      throw new CheckpointError(
        `${ref.file}: unexpected tensor '${ref.name}' (not part of this architecture with ${config.numLayers} layers)`,
      );
    }
  }
  const missing = [...expected.keys()].filter((name) => !byName.has(name));
  if (missing.length > 0) {
    throw new CheckpointError(`${where}: missing ${missing.length} tensor(s): ${listNames(missing)}`);
  }
  const ordered = new Map<string, TensorRef>();
  for (const [name, shape] of expected) {
    const ref = byName.get(name)!;
    if (ref.shape.length !== shape.length || ref.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `${ref.file}: tensor '${name}' has shape [${ref.shape}], expected [${shape}] for this config`,
      );
    }
    ordered.set(name, ref);
  }
  return ordered;
}
