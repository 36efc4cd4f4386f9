/**
 * Transformations: a subscription's JSONata expression makes the callback body out of the
 * event. The expression is checked where it comes in and evaluated by the Transformer port,
 * bounded in time, memory and output; no partner code runs.
 */

import { ValidationError } from './errors.ts';
import type { EventView } from './events.ts';
import type { Subscription } from './model.ts';
import type { Transformer, TransformResult } from './ports.ts';

/** A subscription's transformation: its expression, checked (ValidationError naming it if bad). */
export interface TransformationInput {
  jsonata: string;
}

export async function checkedTransformation(
  deps: { transformer?: Pick<Transformer, 'check'> },
  input: TransformationInput,
): Promise<{ jsonata: string }> {
  if (deps.transformer === undefined) {
    throw new ValidationError('this deployment does not evaluate transformations', [
      { field: 'transformation', message: 'not available here' },
    ]);
  }
  const issue = await deps.transformer.check(input.jsonata);
  if (issue !== undefined) {
    const where = issue.position === undefined ? '' : ` (at character ${issue.position})`;
    throw new ValidationError(`the transformation's expression cannot be used: ${issue.message}${where}`, [
      { field: 'transformation.jsonata', message: `${issue.message}${where}` },
    ]);
  }
  return { jsonata: input.jsonata };
}

/**
 * The callback body: the event as a poll returns it, or what the subscription's transformation
 * makes of it. Without a transformer, a subscription with a transformation gets no body (never
 * the untransformed one).
 */
export async function callbackBody(
  deps: { transformer?: Pick<Transformer, 'apply'> },
  subscription: Pick<Subscription, 'transformation'>,
  view: EventView,
): Promise<TransformResult> {
  if (subscription.transformation === undefined) return { body: JSON.stringify(view) };
  if (deps.transformer === undefined) return { error: 'this dispatcher cannot evaluate transformations' };
  return deps.transformer.apply(subscription.transformation.jsonata, view);
}
