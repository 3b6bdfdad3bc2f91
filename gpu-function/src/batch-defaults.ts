// Batch limits sized for the device when not set: the CUDA provider gets a wide batch and a
// fixed cache budget (the GPU's memory is not visible from Node; 8 GiB suits a 24 GB card
// serving float16 7B weights), the CPU a narrow batch and a quarter of the RAM.
import os from 'node:os';
import { cudaProviderInstalled } from './engine/session.ts';

export interface BatchDefaults {
  maxRows: number;
  kvBudgetBytes: number;
}

export function batchDefaults(cuda = cudaProviderInstalled()): BatchDefaults {
  return cuda
    ? { maxRows: 32, kvBudgetBytes: 8 * 1024 ** 3 }
    : { maxRows: 8, kvBudgetBytes: Math.floor(os.totalmem() / 4) };
}
