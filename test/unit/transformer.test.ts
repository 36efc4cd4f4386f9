/**
 * The JSONata transformer on its real worker thread: expressions are checked where they come
 * in, evaluated within their bounds, and every failure is an answer (never a hang, never the
 * process's memory): one that loops, recurses, builds a huge value or a huge result.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { EVALUATION_LIMITS } from '../../functions/adapters/jsonata/limits.ts';
import { JsonataTransformer, MAX_EXPRESSION_CHARS } from '../../functions/adapters/jsonata/transformer.ts';

const transformer = new JsonataTransformer();
afterAll(() => transformer.close());

const view = {
  id: 'evt_01M89S1931EBJDB1QGF23KRV5E',
  type: 'order.created',
  payload: {
    orderId: 'o_1',
    total: 1250,
    lines: [
      { sku: 'a', qty: 2 },
      { sku: 'b', qty: 1 },
    ],
  },
  createdAt: '2026-11-25T16:36:16.097Z',
};

describe('checking an expression', () => {
  it('accepts a plain expression', async () => {
    expect(await transformer.check('{"order": payload.orderId, "skus": payload.lines.sku}')).toBeUndefined();
  });

  it('refuses bad syntax, saying where', async () => {
    const issue = await transformer.check('{"order": payload.orderId');
    expect(issue?.message).toBeTruthy();
    expect(issue?.position).toBeGreaterThan(0);
  });

  it('refuses a regular expression, which could backtrack inside one step', async () => {
    expect((await transformer.check('$match(payload.orderId, /(a+)+$/)'))?.message).toMatch(
      /regular expressions/,
    );
    expect((await transformer.check('payload.orderId ~> /o_/'))?.message).toMatch(/regular expressions/);
  });

  it('refuses $eval, an expression built at run time', async () => {
    expect((await transformer.check('$eval("1 + 1")'))?.message).toMatch(/\$eval/);
  });

  it(`refuses an expression of more than ${MAX_EXPRESSION_CHARS} characters`, async () => {
    expect((await transformer.check(`"${'x'.repeat(MAX_EXPRESSION_CHARS)}"`))?.message).toMatch(/at most/);
  });
});

describe('applying an expression', () => {
  it('gives the result as JSON text', async () => {
    const result = await transformer.apply(
      '{"order": payload.orderId, "amount": payload.total / 100, "skus": payload.lines.sku, "kind": type}',
      view,
    );
    expect(result).toEqual({
      body: JSON.stringify({ order: 'o_1', amount: 12.5, skus: ['a', 'b'], kind: 'order.created' }),
    });
  });

  it('evaluates side by side, each with its own input', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) => transformer.apply('payload.n * 2', { payload: { n } })),
    );
    expect(results).toEqual(Array.from({ length: 20 }, (_, n) => ({ body: String(n * 2) })));
  });

  it('fails an expression that gives nothing, or fails at run time, saying why', async () => {
    expect(await transformer.apply('payload.missing', view)).toEqual({
      error: 'the expression gave no result',
    });
    const failed = await transformer.apply('$number("abc") + $sum("x")', view);
    expect('error' in failed && failed.error.length > 0).toBe(true);
  });

  it('stops an endless loop and deep recursion', async () => {
    const loop = await transformer.apply('($f := function($n) { $f($n + 1) }; $f(0))', view);
    expect('error' in loop).toBe(true);
    const spin = await transformer.apply('($f := function($n) { $n > 1e12 ? $n : $f($n + 1) }; $f(0))', view);
    expect('error' in spin).toBe(true);
  });

  it('cuts an error of the expression’s making to a kilobyte', async () => {
    const result = await transformer.apply('$error($pad("", 3000000, "x"))', view);
    expect('error' in result && result.error.length).toBeLessThanOrEqual(1025);
  });

  it('says so when the result is not JSON', async () => {
    expect(await transformer.apply('function($x) { $x }', view)).toEqual({
      error: 'the expression gave a function, not JSON',
    });
  });

  it('refuses a result larger than a payload may be', async () => {
    const result = await transformer.apply(`$pad("", ${EVALUATION_LIMITS.maxOutputBytes + 10})`, view);
    expect(result).toMatchObject({ error: expect.stringMatching(/at most 262144/) });
  });

  it('stops an expression that builds a huge value in one step, and the next one evaluates as usual', async () => {
    // One builtin call JSONata cannot interrupt: the thread runs out of memory or out of time.
    const huge = await transformer.apply('$length($pad("", 2000000000))', view);
    expect('error' in huge).toBe(true);
    expect(await transformer.apply('payload.orderId', view)).toEqual({ body: '"o_1"' });
  }, 20_000);

  it('stops a thread that runs out of memory, and starts another', async () => {
    const greedy = await transformer.apply(
      '$count($map([1..99999], function($v) { $pad("", 100000) }))',
      view,
    );
    expect(greedy).toMatchObject({ error: expect.any(String) });
    expect(await transformer.apply('payload.total', view)).toEqual({ body: '1250' });
  }, 20_000);

  it('terminates a thread held past the hard timeout, failing only what it ran; the rest run on the next', async () => {
    const strict = new JsonataTransformer({ hardTimeoutMs: 300 });
    try {
      // One builtin over a long sequence: a single step JSONata's own time guard cannot stop.
      const slow = '$count($distinct([1..100000]))';
      const [held, behind, checked] = await Promise.all([
        strict.apply(slow, view),
        strict.apply('payload.total', view),
        strict.check('payload.orderId'),
      ]);
      expect(held).toEqual({ error: 'took longer than 300 ms' });
      // What waited behind it (another partner's try, a check) is not failed with it.
      expect(behind).toEqual({ body: '1250' });
      expect(checked).toBeUndefined();
      expect(await strict.apply('payload.orderId', view)).toEqual({ body: '"o_1"' });
    } finally {
      await strict.close();
    }
  }, 20_000);

  it('answers a check the thread cannot make in time with a fault to try again after (503)', async () => {
    const strict = new JsonataTransformer({ hardTimeoutMs: 1 });
    try {
      await expect(strict.check('payload.orderId')).rejects.toMatchObject({ status: 503 });
    } finally {
      await strict.close();
    }
  });
});
