/**
 * A cipher that remembers what it opened: the stores read the same subscriptions over and
 * over (the dispatcher one per delivery, fan-out a partner's all per event), and a sealed
 * secret never changes (a new seal is new text, with a fresh IV), so the text and its
 * subscription are an exact key. Bounded: the entry opened longest ago goes first.
 */
import type { SecretCipher } from '../../core/ports.ts';
import { setBounded } from '../bounded-map.ts';

/** Opened secrets kept, unless told otherwise: far more than a deployment's live secrets. */
export const REMEMBERED_SECRETS = 10_000;

export class RememberingCipher implements SecretCipher {
  readonly #inner: SecretCipher;
  readonly #limit: number;
  readonly #opened = new Map<string, string>();

  constructor(inner: SecretCipher, limit = REMEMBERED_SECRETS) {
    this.#inner = inner;
    this.#limit = limit;
  }

  seal(secret: string, context: string): Promise<string> {
    return this.#inner.seal(secret, context);
  }

  async open(sealed: string, context: string): Promise<string> {
    const key = `${context} ${sealed}`;
    const known = this.#opened.get(key);
    if (known !== undefined) return known;
    const secret = await this.#inner.open(sealed, context);
    setBounded(this.#opened, key, secret, this.#limit);
    return secret;
  }
}
