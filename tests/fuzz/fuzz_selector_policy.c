/*
 * fuzz_selector_policy.c - fuzz target for the selector's policy file
 * parser (SCOMM_SELECTOR_CONFIG: scomm_coll_policy_parse in
 * src/coll/policy.c).
 *
 * Input: the file's bytes.
 *
 * Invariants: on failure the message is non-empty, names the file and no
 * rules are left; on success every rule names an operation's algorithm,
 * its bounds are ordered, and matching each rule's own lower bounds finds
 * a rule (itself or an earlier one) without crashing.
 */
#include "fuzz_common.h"

#include "coll/coll.h"

#define FUZZ_NAME "fuzz.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scomm_coll_policy_t pol;
    const scomm_coll_policy_rule_t *r, *m;
    char err[320];
    int i, op;

    memset(err, FUZZ_WHY_FILL, sizeof(err));
    if (scomm_coll_policy_parse((const char *)data, size, FUZZ_NAME, &pol,
                                err, sizeof(err)) != 0) {
        fuzz_check_why(err, sizeof(err));
        FUZZ_CHECK(strncmp(err, FUZZ_NAME, strlen(FUZZ_NAME)) == 0);
        FUZZ_CHECK((pol.n == 0) && (pol.rules == NULL));
        return 0;
    }
    for (i = 0; i < pol.n; i++) {
        r = &pol.rules[i];
        FUZZ_CHECK(r->min_bytes <= r->max_bytes);
        FUZZ_CHECK(r->min_ranks <= r->max_ranks);
        FUZZ_CHECK(strnlen(r->id, sizeof(r->id)) < sizeof(r->id));
        for (op = 0; op < SCOMM_COLL_OP_COUNT; op++) {
            if (((r->op >= 0) && (r->op != op)) ||
                (scomm_coll_algo_index((scomm_coll_op_t)op, r->algo) < 0)) {
                continue;
            }
            m = scomm_coll_policy_match(
                &pol, (scomm_coll_op_t)op, r->min_bytes,
                (r->pow2 == 1) ? 1 : SCOMM_MAX(r->min_ranks, 3),
                r->all_local == 1, r->transport);
            (void)m; /* a later bound (pow2 vs min_ranks) may exclude it */
        }
    }
    scomm_coll_policy_free(&pol);
    return 0;
}
