/**
 * Every dashboard page, one router each (docs/design.md#dashboard). Adding a page: write `pages/<name>.tsx`
 * exporting `<name>Routes(fetchApp)` whose handlers use `handlePage(fetchApp, tab, title)` (session, the API's access
 * check and the handle switcher come with it), add it to this list, and give it a tab in src/dashboard/nav.ts if it
 * has one. Parts of a page that change on their own go in a `LiveRegion`; next steps in `NextSteps`.
 */
import type { Hono } from 'hono';
import type { AppEnv } from '../../env.ts';
import type { ApiFetch } from '../api.ts';
import { archivesRoutes } from './archives.tsx';
import { deliveryRetryRoutes } from './delivery-retry.tsx';
import { emailRoutes } from './email.tsx';
import { notificationRoutes } from './notification.tsx';
import { notificationsRoutes } from './notifications.tsx';
import { overviewRoutes } from './overview.tsx';
import { peakWindowsRoutes } from './peak-windows.tsx';
import { reportRoutes } from './report.tsx';
import { settingsRoutes } from './settings.tsx';
import { signInRoutes } from './sign-in.tsx';
import { usageRoutes } from './usage.tsx';
import { webhookRoutes } from './webhook.tsx';
import { webhooksRoutes } from './webhooks.tsx';

/** The routers, mounted at `/dashboard` in this order (anything none of them answers is the not-found page). */
export const PAGES: readonly ((fetchApp: ApiFetch) => Hono<AppEnv>)[] = [
  signInRoutes,
  reportRoutes,
  overviewRoutes,
  webhooksRoutes,
  webhookRoutes,
  deliveryRetryRoutes,
  emailRoutes,
  settingsRoutes,
  notificationsRoutes,
  notificationRoutes,
  archivesRoutes,
  usageRoutes,
  peakWindowsRoutes,
];
