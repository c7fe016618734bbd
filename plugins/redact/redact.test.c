// Native test of redact.c (see plugins/native_test.h).
#include "redact.c"

#include <native_test.h>

int main(void) {
    EXPECT_EQ(init(), PLUGIN_OK);
    // E-mail addresses.
    EXPECT_CALL(fn_emails, "mail bob.smith@example.co.uk now", "mail *********************** now");
    EXPECT_CALL(fn_emails, "a@b.io", "******");
    EXPECT_CALL(fn_emails, "<jane+tag@mail-server.example.org>", "<********************************>");
    EXPECT_CALL(fn_emails, "x@example.com.", "*************.");
    EXPECT_CALL(fn_emails, "x@example.com.x1", "*************.x1");
    EXPECT_CALL(fn_emails, ".a.b@c.de", ".********");
    EXPECT_CALL(fn_emails, "no address @ here", "no address @ here");
    EXPECT_CALL(fn_emails, "user@localhost", "user@localhost");
    EXPECT_CALL(fn_emails, "user@-bad.com", "user@-bad.com");
    EXPECT_CALL(fn_emails, "user@123.45", "user@123.45");
    EXPECT_CALL(fn_emails, "a@b.c", "a@b.c");
    EXPECT_CALL(fn_emails, "@example.com", "@example.com");
    EXPECT_CALL(fn_emails, "two: a@x.org, b@y.net", "two: *******, *******");
    // Card numbers: Luhn-valid test numbers of the major schemes, grouped or not.
    EXPECT_CALL(fn_cards, "card 4111 1111 1111 1111.", "card **** **** **** 1111.");
    EXPECT_CALL(fn_cards, "4111111111111111", "************1111");
    EXPECT_CALL(fn_cards, "amex 3782-822463-10005 ok", "amex ****-******-*0005 ok");
    EXPECT_CALL(fn_cards, "5555555555554444", "************4444");
    EXPECT_CALL(fn_cards, "4222222222222", "*********2222");                // 13 digits
    EXPECT_CALL(fn_cards, "6011000990139424", "************9424");
    // Not cards: Luhn fails, too short, too long, part of a word, mixed separators.
    EXPECT_CALL(fn_cards, "4111 1111 1111 1112", "4111 1111 1111 1112");
    EXPECT_CALL(fn_cards, "order 123456789012", "order 123456789012");
    EXPECT_CALL(fn_cards, "41111111111111111111", "41111111111111111111");  // 20 digits
    EXPECT_CALL(fn_cards, "id4111111111111111", "id4111111111111111");
    EXPECT_CALL(fn_cards, "4111111111111111x", "4111111111111111x");
    EXPECT_CALL(fn_cards, "4111 1111-1111 1111", "4111 1111-1111 1111");
    EXPECT_CALL(fn_cards, "4111  1111 1111 1111", "4111  1111 1111 1111");
    EXPECT_CALL(fn_cards, "", "");
    // Both.
    EXPECT_CALL(fn_redact, "From a@b.io: pay with 4111-1111-1111-1111, ref 42",
                "From ******: pay with ****-****-****-1111, ref 42");
    EXPECT_CALL(fn_emails, "pay 4111111111111111", "pay 4111111111111111");
    EXPECT_CALL(fn_cards, "a@b.io", "a@b.io");
    // A full buffer of digits and at-signs reads nothing outside it.
    static unsigned char noise[65536];
    for (int i = 0; i < 65536; i++) {
        noise[i] = "4@1.a-1 "[i % 8];
    }
    EXPECT_EQ(call_with(fn_redact, noise, 65536), 65536);
    EXPECT_EQ(fn_redact(-1), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(fn_redact(65537), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(cleanup(), PLUGIN_OK);

    // Configuration (configure() is what init() runs on the configuration buffer).
#define CONFIGURE(text) configure((const unsigned char *)(text), (int)strlen(text))
    EXPECT_EQ(CONFIGURE("{\"mask\": [\"cards\"], \"fields\": [\"ssn\", \"password\"]}"), PLUGIN_OK);
    EXPECT_CALL(fn_redact, "{\"ssn\": \"078-05-1120\", \"mail\": \"a@b.io\", \"card\": \"4111111111111111\"}",
                "{\"ssn\": \"***********\", \"mail\": \"a@b.io\", \"card\": \"************1111\"}");
    EXPECT_CALL(fn_redact, "{\"password\":12345,\"n\":1}", "{\"password\":*****,\"n\":1}");
    EXPECT_CALL(fn_redact, "{\"password\" : {\"a\": [1, \"}\"]}, \"n\": 1}", "{\"password\" : ***************, \"n\": 1}");
    EXPECT_CALL(fn_redact, "{\"password\": \"a\\\"b\"}", "{\"password\": \"****\"}");
    EXPECT_CALL(fn_emails, "a@b.io", "******");  // fn_emails is not configured
    EXPECT_EQ(CONFIGURE("{\"mask\": []}"), PLUGIN_OK);
    EXPECT_CALL(fn_redact, "a@b.io 4111111111111111", "a@b.io 4111111111111111");
    // Refused: not an object, unknown keys or kinds, wrong types, escapes in names.
    EXPECT_EQ(CONFIGURE("[]"), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(CONFIGURE("{\"colour\": 1}"), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(CONFIGURE("{\"mask\": [\"phones\"]}"), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(CONFIGURE("{\"mask\": \"cards\"}"), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(CONFIGURE("{\"fields\": [\"a\\\"b\"]}"), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(CONFIGURE("{} x"), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(CONFIGURE(""), PLUGIN_OK);
    return native_test_result("redact");
}
