/**
 * The tabs of a handle's pages, in the order shown. A page with a tab adds one line here (its key, label and path
 * under `/dashboard/h/{handle}`) and one in src/dashboard/pages/index.ts; a page without a tab only the latter.
 */
export const TABS = [
  { key: 'overview', label: 'Overview', path: '' },
  { key: 'webhooks', label: 'Webhooks', path: '/webhooks' },
  { key: 'email', label: 'Email', path: '/email' },
  { key: 'settings', label: 'Settings', path: '/settings' },
  { key: 'notifications', label: 'Notifications', path: '/notifications' },
  { key: 'archives', label: 'Archives', path: '/archives' },
  { key: 'usage', label: 'Usage', path: '/usage' },
] as const;

/** The tab a page belongs to (highlighted in the navigation). */
export type TabKey = (typeof TABS)[number]['key'];
