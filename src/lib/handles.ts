/** What a handle looks like, in one place: the API's path parameter, queue messages and the dashboard check it. */

/** One DNS label: lower-case letters, digits and inner hyphens, 1–63 characters. */
export const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A handle is a lower-case slug shaped like a DNS label, so it can also name a topic or a subdomain. */
export const HANDLE_PATTERN = DNS_LABEL;
