/**
 * A reader whose cursor the dispatcher keeps: name a consumer once, then follow it. Each page
 * is acknowledged once all its events are handled; a reader that crashes mid-page gets that
 * page again (at least once: an event's id tells a repeat).
 * Run: DISPATCHER_URL=… API_KEY=dk_… node examples/follow-consumer.ts
 */
import { DispatcherClient } from '@webhook-dispatcher/client';

const client = new DispatcherClient({
  baseUrl: process.env.DISPATCHER_URL ?? 'http://127.0.0.1:3000',
  apiKey: process.env.API_KEY ?? '',
});
const name = process.env.CONSUMER ?? 'example-reader';
const stopAfter = Number(process.env.MAX_EVENTS ?? Number.POSITIVE_INFINITY);

// Created the first time, left where it is afterwards (no `start`).
await client.consumers.put(name, { types: process.env.TYPES?.split(',') });

const stop = new AbortController();
let seen = 0;
await client.consumers.follow(
  name,
  (event) => {
    console.log(event.id, event.type, JSON.stringify(event.payload));
    if (++seen >= stopAfter) stop.abort();
  },
  { signal: stop.signal },
);
