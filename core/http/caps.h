/*
 * Connection caps: open connections in the whole server and per client address, counted
 * across the loops (an atomic for the total, a small locked table for the addresses: both
 * are touched once per connection, never per request).
 */
#ifndef MH_CAPS_H
#define MH_CAPS_H

/** Adds @p delta to the server's open connections. @return the new count. Thread: any. */
int mh_caps_server_add(int delta);
/** Open connections in the whole server. Thread: any. */
int mh_caps_open_count(void);
/** Adds @p delta for client address @p ip (IPv6, or IPv4-mapped). @return the new count.
 *  Thread: any. */
int mh_caps_client_add(const unsigned char ip[16], int delta);

#endif
