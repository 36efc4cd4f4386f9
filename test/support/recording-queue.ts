import { MessagesNotSentError } from '../../functions/core/errors.ts';
import type { DeliveryMessage } from '../../functions/core/model.ts';
import type { OutgoingMessage, QueueSender } from '../../functions/core/ports.ts';

/** A delivery queue that keeps what it is sent, and refuses the positions asked of its next send. */
export class RecordingQueue implements QueueSender<DeliveryMessage> {
  readonly sent: OutgoingMessage<DeliveryMessage>[] = [];
  /** Positions (in the next send) to refuse, once. */
  refuse: number[] = [];

  async send(messages: OutgoingMessage<DeliveryMessage>[]): Promise<void> {
    const refused = this.refuse;
    this.refuse = [];
    this.sent.push(...messages.filter((_, i) => !refused.includes(i)));
    if (refused.length > 0) throw new MessagesNotSentError('refused', refused);
  }
}
