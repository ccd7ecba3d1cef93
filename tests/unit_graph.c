/*
 * Unit tests of the Graph API client's pure parts: how Meta's answers are classified
 * (by error.code, as Meta advises) and the request bodies it builds.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "meta/graph.h"

static meta_send_result_t classify(long status, const char *body)
{
    meta_send_result_t r;
    meta_graph_classify(status, status == 0 ? "Connection refused" : NULL, body, body ? strlen(body) : 0, &r);
    return r;
}

static char *error_body(int code, const char *message)
{
    static char b[512];
    snprintf(b, sizeof(b),
             "{\"error\":{\"message\":\"%s\",\"type\":\"OAuthException\",\"code\":%d,\"fbtrace_id\":\"x\"}}", message,
             code);
    return b;
}

Test(graph, accepted_with_the_wamid)
{
    meta_send_result_t r =
        classify(200, "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"+16505551234\","
                      "\"wa_id\":\"16505551234\"}],\"messages\":[{\"id\":\"wamid.HBgL\"}]}");
    cr_assert_eq(r.kind, META_SEND_ACCEPTED);
    cr_assert_str_eq(r.wamid, "wamid.HBgL");
}

Test(graph, a_2xx_without_wamid_is_retried)
{
    cr_assert_eq(classify(200, "{}").kind, META_SEND_RETRY);
    cr_assert_eq(classify(200, "not json").kind, META_SEND_RETRY);
    cr_assert_eq(classify(200, "{\"messages\":[{\"id\":\"\"}]}").kind, META_SEND_RETRY);
    cr_assert_eq(classify(200, "{\"messages\":[{\"id\":7}]}").kind, META_SEND_RETRY);
}

Test(graph, throttling_codes_slow_down)
{
    int codes[] = {130429, 80007, 4, 613};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); ++i) {
        meta_send_result_t r = classify(400, error_body(codes[i], "Rate limit hit"));
        cr_assert_eq(r.kind, META_SEND_THROTTLED, "code %d", codes[i]);
        cr_assert_eq(r.code, codes[i]);
        cr_assert_str_eq(r.title, "Rate limit hit");
    }
    cr_assert_eq(classify(400, error_body(131056, "pair rate limit hit")).kind, META_SEND_PAIR_LIMITED);
}

Test(graph, passing_failures_are_retried)
{
    cr_assert_eq(classify(503, error_body(131057, "Account in maintenance mode")).kind, META_SEND_RETRY);
    cr_assert_eq(classify(500, error_body(131000, "Something went wrong")).kind, META_SEND_RETRY);
    cr_assert_eq(classify(502, "<html>bad gateway</html>").kind, META_SEND_RETRY);
    meta_send_result_t r = classify(0, NULL);
    cr_assert_eq(r.kind, META_SEND_RETRY);
    cr_assert_str_eq(r.title, "Connection refused");
}

Test(graph, other_4xx_fail_for_good_with_code_and_title)
{
    meta_send_result_t r = classify(400, error_body(131047, "Re-engagement message"));
    cr_assert_eq(r.kind, META_SEND_REJECTED);
    cr_assert_eq(r.code, 131047);
    cr_assert_str_eq(r.title, "Re-engagement message");
    cr_assert_eq(classify(400, error_body(100, "Invalid parameter")).kind, META_SEND_REJECTED);
    cr_assert_eq(classify(401, error_body(190, "Invalid OAuth access token")).kind, META_SEND_REJECTED);
    r = classify(404, "");
    cr_assert_eq(r.kind, META_SEND_REJECTED);
    cr_assert_str_eq(r.title, "HTTP 404");
    /* hostile: a huge code, a code of the wrong type, a title far too long */
    r = classify(400, "{\"error\":{\"code\":99999999999,\"message\":\"x\"}}");
    cr_assert_eq(r.code, 0);
    r = classify(400, "{\"error\":{\"code\":\"130429\"}}");
    cr_assert_eq(r.kind, META_SEND_REJECTED);
    char *long_title = malloc(5000);
    int n = sprintf(long_title, "{\"error\":{\"code\":100,\"message\":\"");
    memset(long_title + n, 'a', 4000);
    strcpy(long_title + n + 4000, "\"}}");
    r = classify(400, long_title);
    cr_assert_eq(strlen(r.title), META_TITLE_MAX - 1);
    free(long_title);
}

Test(graph, bodies_follow_the_documented_shapes)
{
    char *t = meta_graph_text("5511987650001", "olá \"mundo\"", "m:42");
    json_t *j = json_loads(t, 0, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "messaging_product")), "whatsapp");
    cr_assert_str_eq(json_string_value(json_object_get(j, "to")), "5511987650001");
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "text");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "text"), "body")), "olá \"mundo\"");
    cr_assert_str_eq(json_string_value(json_object_get(j, "biz_opaque_callback_data")), "m:42");
    json_decref(j);
    free(t);

    t = meta_graph_template("5511987650001", "black_friday", "pt_BR", "[\"Ana\",\"30%\"]", "r:1:2");
    j = json_loads(t, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "template");
    json_t *tpl = json_object_get(j, "template");
    cr_assert_str_eq(json_string_value(json_object_get(tpl, "name")), "black_friday");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(tpl, "language"), "code")), "pt_BR");
    json_t *params = json_object_get(json_array_get(json_object_get(tpl, "components"), 0), "parameters");
    cr_assert_eq(json_array_size(params), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(params, 1), "text")), "30%");
    json_decref(j);
    free(t);

    /* no parameters: no components */
    t = meta_graph_template("5511987650001", "hello", "en", "[]", NULL);
    j = json_loads(t, 0, NULL);
    cr_assert_null(json_object_get(json_object_get(j, "template"), "components"));
    cr_assert_null(json_object_get(j, "biz_opaque_callback_data"));
    json_decref(j);
    free(t);
    cr_assert_null(meta_graph_text(NULL, "x", NULL));
    cr_assert_null(meta_graph_template("1", NULL, "en", NULL, NULL));
}
