/**
 * Every event as it comes, with the client: long polls one after another, the cursor kept for
 * you. Run: DISPATCHER_URL=… API_KEY=dk_… node examples/poll.ts
 * (MAX_EVENTS stops after that many, for trying it out.)
 */
import { DispatcherClient } from '@webhook-dispatcher/client';

const client = new DispatcherClient({
  baseUrl: process.env.DISPATCHER_URL ?? 'http://127.0.0.1:3000',
  apiKey: process.env.API_KEY ?? '',
});
const stopAfter = Number(process.env.MAX_EVENTS ?? Number.POSITIVE_INFINITY);

let seen = 0;
for await (const event of client.events.poll({ after: process.env.AFTER })) {
  console.log(event.id, event.type, JSON.stringify(event.payload));
  if (++seen >= stopAfter) break;
}
