/** The clock of the running process: what every runtime wires where the core takes a Clock. */
import type { Clock } from '../core/ports.ts';

export const systemClock: Clock = { now: () => new Date() };
