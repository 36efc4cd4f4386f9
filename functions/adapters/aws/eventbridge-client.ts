/**
 * The EventBridge client, created once per cold start, for the one function that puts events
 * on the bus itself (the pipe's recovery); apart so no other bundle loads the package.
 */
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';

export const eventBridgeClient = new EventBridgeClient({});
