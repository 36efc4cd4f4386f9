/**
 * The CDK app (cdk.json runs it: `node bin/app.ts`). Settings come from context; see
 * lib/settings.ts.
 */
import { App } from 'aws-cdk-lib';
import { defineDispatcherApp } from '../lib/app.ts';

defineDispatcherApp(new App());
