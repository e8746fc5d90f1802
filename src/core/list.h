/*
 * list.h - intrusive circular doubly-linked list.
 *
 * An empty list is a head whose next and prev point at itself. Elements embed
 * a scomm_list_t and are recovered with scomm_container_of(). Nothing here
 * allocates.
 */
#ifndef SCOMM_LIST_H
#define SCOMM_LIST_H

#include <stddef.h>

typedef struct scomm_list {
    struct scomm_list *next;
    struct scomm_list *prev;
} scomm_list_t;

#define scomm_container_of(_ptr, _type, _member) \
    ((_type *)((char *)(_ptr) - offsetof(_type, _member)))

static inline void scomm_list_init(scomm_list_t *head)
{
    head->next = head;
    head->prev = head;
}

static inline int scomm_list_empty(const scomm_list_t *head)
{
    return head->next == head;
}

static inline void scomm_list_insert_after(scomm_list_t *pos,
                                           scomm_list_t *elem)
{
    elem->prev       = pos;
    elem->next       = pos->next;
    pos->next->prev  = elem;
    pos->next        = elem;
}

static inline void scomm_list_push_back(scomm_list_t *head,
                                        scomm_list_t *elem)
{
    scomm_list_insert_after(head->prev, elem);
}

static inline void scomm_list_del(scomm_list_t *elem)
{
    elem->prev->next = elem->next;
    elem->next->prev = elem->prev;
    elem->next       = elem;
    elem->prev       = elem;
}

static inline scomm_list_t *scomm_list_pop_front(scomm_list_t *head)
{
    scomm_list_t *elem;

    if (scomm_list_empty(head)) {
        return NULL;
    }
    elem = head->next;
    scomm_list_del(elem);
    return elem;
}

#define scomm_list_for_each_safe(_elem, _tmp, _head)                      \
    for ((_elem) = (_head)->next, (_tmp) = (_elem)->next;                 \
         (_elem) != (_head); (_elem) = (_tmp), (_tmp) = (_elem)->next)

#endif /* SCOMM_LIST_H */
