/** SendCoalescer: the sends of a batch's records, gathered into one. */
import { describe, expect, it } from 'vitest';
import { SendCoalescer } from '../../functions/batch.ts';
import { MessagesNotSentError } from '../../functions/core/errors.ts';
import type { OutgoingMessage, QueueSender } from '../../functions/core/ports.ts';

/** A queue that records each send and answers as told. */
function queue(answer: (messages: OutgoingMessage<string>[]) => Promise<void> = async () => {}) {
  const sends: string[][] = [];
  const sender: QueueSender<string> = {
    send: async (messages) => {
      sends.push(messages.map((m) => m.body));
      await answer(messages);
    },
  };
  return { sender, sends };
}

const messages = (...bodies: string[]) => bodies.map((body) => ({ body }));

describe('SendCoalescer', () => {
  it('sends once, when every record has sent or ended, with every record’s messages in order', async () => {
    const { sender, sends } = queue();
    const coalescer = new SendCoalescer(sender, 3);
    const [a, b, c] = [coalescer.sender(), coalescer.sender(), coalescer.sender()];
    const first = a.send(messages('a1', 'a2'));
    const second = c.send(messages('c1'));
    await Promise.resolve();
    expect(sends).toEqual([]);
    b.close();
    await Promise.all([first, second]);
    expect(sends).toEqual([['a1', 'a2', 'c1']]);
    // Closing after sending changes nothing; a second send goes on its own.
    a.close();
    await a.send(messages('a3'));
    expect(sends).toEqual([['a1', 'a2', 'c1'], ['a3']]);
  });

  it('sends nothing when no record has anything to send', async () => {
    const { sender, sends } = queue();
    const coalescer = new SendCoalescer(sender, 2);
    coalescer.sender().close();
    coalescer.sender().close();
    await Promise.resolve();
    expect(sends).toEqual([]);
  });

  it('fails only the records whose own messages were not sent, naming them in their own send', async () => {
    const { sender } = queue(async () => {
      throw new MessagesNotSentError('2 not sent', [1, 4]);
    });
    const coalescer = new SendCoalescer(sender, 3);
    const [a, b, c] = [coalescer.sender(), coalescer.sender(), coalescer.sender()];
    const results = await Promise.allSettled([
      a.send(messages('a1')),
      b.send(messages('b1', 'b2')),
      c.send(messages('c1', 'c2')),
    ]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: undefined });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { unsent: [0] } });
    expect(results[2]).toMatchObject({ status: 'rejected', reason: { unsent: [1] } });
  });

  it('fails every record when the send fails without saying which messages went', async () => {
    const { sender } = queue(async () => {
      throw new Error('unreachable');
    });
    const coalescer = new SendCoalescer(sender, 2);
    const results = await Promise.allSettled([
      coalescer.sender().send(messages('a')),
      coalescer.sender().send(messages('b')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
