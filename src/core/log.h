/*
 * log.h - leveled, subsystem-filtered logging to stderr (or SCOMM_LOG_FILE).
 *
 * The level and subsystem mask are tested before any formatting, so a
 * disabled log line costs one load and one compare. The library never writes
 * to stdout. Each line: "host:pid:rank [SUBSYS] LEVEL file:line message".
 */
#ifndef SCOMM_LOG_H
#define SCOMM_LOG_H

#include <stdint.h>

typedef enum {
    SCOMM_LOG_NONE  = 0,
    SCOMM_LOG_ERROR = 1,
    SCOMM_LOG_WARN  = 2,
    SCOMM_LOG_INFO  = 3,
    SCOMM_LOG_DEBUG = 4,
    SCOMM_LOG_TRACE = 5
} scomm_log_level_t;

typedef enum {
    SCOMM_SUB_INIT  = 1u << 0,
    SCOMM_SUB_BOOT  = 1u << 1,
    SCOMM_SUB_TL    = 1u << 2,
    SCOMM_SUB_SHM   = 1u << 3,
    SCOMM_SUB_TCP   = 1u << 4,
    SCOMM_SUB_RDMA  = 1u << 5,
    SCOMM_SUB_COLL  = 1u << 6,
    SCOMM_SUB_TOPO  = 1u << 7,
    SCOMM_SUB_KV    = 1u << 8,
    SCOMM_SUB_PROG  = 1u << 9,
    SCOMM_SUB_ENV   = 1u << 10,
    SCOMM_SUB_TELEM = 1u << 11,
    SCOMM_SUB_P2P   = 1u << 12,
    SCOMM_SUB_ALL   = 0xffffffffu
} scomm_log_subsys_t;

extern int scomm_log_level_g;
extern uint32_t scomm_log_mask_g;

void scomm_log_init(void);
void scomm_log_set_rank(int rank);
void scomm_log_emit(scomm_log_level_t level, scomm_log_subsys_t sub,
                    const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int scomm_log_parse_level(const char *text);

#define scomm_log_(_level, _sub, ...)                                      \
    do {                                                                   \
        if (((int)(_level) <= scomm_log_level_g) &&                        \
            ((scomm_log_mask_g & (uint32_t)(_sub)) != 0)) {                \
            scomm_log_emit((_level), (_sub), __FILE__, __LINE__,           \
                           __VA_ARGS__);                                   \
        }                                                                  \
    } while (0)

#define scomm_error(_sub, ...) scomm_log_(SCOMM_LOG_ERROR, _sub, __VA_ARGS__)
#define scomm_warn(_sub, ...)  scomm_log_(SCOMM_LOG_WARN, _sub, __VA_ARGS__)
#define scomm_info(_sub, ...)  scomm_log_(SCOMM_LOG_INFO, _sub, __VA_ARGS__)
#define scomm_debug(_sub, ...) scomm_log_(SCOMM_LOG_DEBUG, _sub, __VA_ARGS__)
#ifdef SCOMM_ENABLE_TRACE
#define scomm_trace(_sub, ...) scomm_log_(SCOMM_LOG_TRACE, _sub, __VA_ARGS__)
#else
#define scomm_trace(_sub, ...) do { } while (0)
#endif

#endif /* SCOMM_LOG_H */
