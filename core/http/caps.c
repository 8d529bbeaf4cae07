/* Connection caps (see caps.h). */
#include "http/caps.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/mem.h"

#define IP_BUCKETS 4096

struct ip_count {
    struct ip_count *next;
    unsigned char ip[16];
    int n;
};

static atomic_int open_connections;
static pthread_mutex_t ip_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ip_count *ip_buckets[IP_BUCKETS];

int mh_caps_server_add(int delta)
{
    return atomic_fetch_add(&open_connections, delta) + delta;
}

int mh_caps_open_count(void)
{
    return atomic_load(&open_connections);
}

int mh_caps_client_add(const unsigned char ip[16], int delta)
{
    struct ip_count **pp, *e;
    int n = 0;

    pthread_mutex_lock(&ip_lock);
    for (pp = &ip_buckets[mh_hash(ip, 16) % IP_BUCKETS]; (e = *pp); pp = &e->next) {
        if (memcmp(e->ip, ip, 16) == 0)
            break;
    }
    if (!e && delta > 0) {
        e = mh_xcalloc(1, sizeof(*e));
        memcpy(e->ip, ip, 16);
        *pp = e;
    }
    if (e) {
        e->n += delta;
        n = e->n;
        if (e->n <= 0) {
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&ip_lock);
    return n;
}
