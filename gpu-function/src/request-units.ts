// How a wire request becomes engine calls: each prompt's n samples are split into units of at
// most `maxRows` rows (the scheduler's per-unit bound). A unit is one engine call: its samples
// share the prompt's prefill, and sample j of prompt p is choice p * n + j everywhere.

import type { GenerateRequest } from '../../shared/src/protocol/generate.ts';
import type { Scheduler, Ticket, UnitSpec } from './scheduler.ts';

export interface RequestUnit {
  prompt: number;
  /** First sample (choice offset within the prompt). */
  firstSample: number;
  n: number;
  spec: UnitSpec;
}

export function planUnits(req: GenerateRequest, maxRows: number): RequestUnit[] {
  const units: RequestUnit[] = [];
  req.prompts.forEach((ids, prompt) => {
    for (let first = 0; first < req.n; first += maxRows) {
      const n = Math.min(maxRows, req.n - first);
      units.push({
        prompt,
        firstSample: first,
        n,
        spec: { rows: n, tokens: ids.length + req.stopping.max_new_tokens },
      });
    }
  });
  return units;
}

export interface Admission {
  ticket: Ticket;
  units: RequestUnit[];
}

/** Takes the request's places in line (throws 503 when full, 400 when it can never fit). */
export function enterRequest(scheduler: Scheduler, req: GenerateRequest): Admission {
  const units = planUnits(req, scheduler.maxUnitRows);
  return {
    ticket: scheduler.enter(
      req.key_id ?? '',
      units.map((u) => u.spec),
    ),
    units,
  };
}
