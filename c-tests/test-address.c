/* PCI address parsing and formatting, the last-error slot, the log callback, ownership. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "virtpci.h"

static void test_error_codes_are_frozen(void)
{
    /* Published values never change: they are libvirt's virErrorNumber values. */
    CHECK(VIRTPCI_ERR_OK == 0, "OK");
    CHECK(VIRTPCI_ERR_INTERNAL == 1, "INTERNAL");
    CHECK(VIRTPCI_ERR_INVALID_ARG == 8, "INVALID_ARG");
    CHECK(VIRTPCI_ERR_XML_ERROR == 27, "XML_ERROR");
    CHECK(VIRTPCI_ERR_OPERATION_INVALID == 55, "OPERATION_INVALID");
    CHECK(VIRTPCI_ERR_CONFIG_UNSUPPORTED == 67, "CONFIG_UNSUPPORTED");
    CHECK(sizeof(VirtpciPciAddress) == 4 * sizeof(unsigned int), "struct layout");
}

static void test_parse_and_format(void)
{
    VirtpciPciAddress a = {0};
    CHECK(virtpci_pci_address_parse("0000:0a:1f.7", &a) == 0, "%s", virtpci_last_error_message());
    CHECK(a.domain == 0 && a.bus == 0x0a && a.slot == 0x1f && a.function == 7, "fields");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OK, "no error after success");
    char *s = virtpci_pci_address_format(&a);
    CHECK_STR(s, "0000:0a:1f.7");
    free(s); /* malloc'd: free() is right */

    CHECK(virtpci_pci_address_parse("06:12.2", &a) == 0, "short form");
    CHECK(a.domain == 0 && a.bus == 6 && a.slot == 0x12 && a.function == 2, "short fields");
    s = virtpci_pci_address_format(&a);
    CHECK_STR(s, "0000:06:12.2");
    virtpci_string_free(s); /* and so is virtpci_string_free() */
    virtpci_string_free(NULL);
}

static void expect_parse_error(const char *text, const char *part)
{
    VirtpciPciAddress a = {1, 2, 3, 4};
    int rc = virtpci_pci_address_parse(text, &a);
    CHECK(rc == -1, "parse(%s) returned %d", text ? text : "NULL", rc);
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "code %d",
          virtpci_last_error_code());
    const char *msg = virtpci_last_error_message();
    CHECK(msg && strstr(msg, part) != NULL, "message \"%s\" lacks \"%s\"", msg, part);
    CHECK(a.domain == 1 && a.bus == 2 && a.slot == 3 && a.function == 4, "out left unchanged");
}

static void test_bad_input(void)
{
    expect_parse_error("0000:00:20.0", "slot 0x20 is out of range, must be <= 0x1F");
    expect_parse_error("0000:00:1f.8", "function 0x8 is out of range, must be <= 0x7");
    expect_parse_error("0000:100:00.0", "bus '100'");
    expect_parse_error("", "expected DDDD:BB:SS.F or BB:SS.F");
    expect_parse_error("../../etc", "PCI address '../../etc'");
    expect_parse_error(NULL, "str in virtpci_pci_address_parse must not be NULL");
    expect_parse_error("\xff\xfe:00.0", "not valid UTF-8");

    CHECK(virtpci_pci_address_parse("0000:00:01.0", NULL) == -1, "NULL out");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "NULL out code");

    CHECK(virtpci_pci_address_format(NULL) == NULL, "format(NULL)");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "format(NULL) code");
    VirtpciPciAddress bad = {0, 0, 0x20, 0};
    CHECK(virtpci_pci_address_format(&bad) == NULL, "format out of range");
    CHECK(strstr(virtpci_last_error_message(), "slot") != NULL, "%s",
          virtpci_last_error_message());

    virtpci_reset_last_error();
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OK, "reset");
    CHECK_STR(virtpci_last_error_message(), "no error");
}

struct thread_result {
    const char *input;
    int code;
    char message[256];
};

static void *parse_in_thread(void *arg)
{
    struct thread_result *r = arg;
    VirtpciPciAddress a;
    for (int i = 0; i < 1000; i++)
        virtpci_pci_address_parse(r->input, &a);
    r->code = virtpci_last_error_code();
    snprintf(r->message, sizeof(r->message), "%s", virtpci_last_error_message());
    return NULL;
}

static void test_error_is_thread_local(void)
{
    struct thread_result bad = {"0000:00:1f.8", -1, ""}, good = {"0000:00:1f.7", -1, ""};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, parse_in_thread, &bad);
    pthread_create(&t2, NULL, parse_in_thread, &good);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(bad.code == VIRTPCI_ERR_INVALID_ARG, "bad thread code %d", bad.code);
    CHECK(strstr(bad.message, "function") != NULL, "bad thread message %s", bad.message);
    CHECK(good.code == VIRTPCI_ERR_OK, "good thread code %d", good.code);
    CHECK_STR(good.message, "no error");
}

struct log_seen {
    int calls;
    int level;
    char last[256];
};

static void log_cb(int level, const char *message, void *opaque)
{
    struct log_seen *seen = opaque;
    seen->calls++;
    seen->level = level;
    snprintf(seen->last, sizeof(seen->last), "%s", message);
}

static void test_log_callback(void)
{
    struct log_seen seen = {0, 0, ""};
    VirtpciPciAddress a;
    virtpci_set_log_callback(log_cb, &seen);
    virtpci_pci_address_parse("0000:00:00.0", &a);
    CHECK(seen.calls == 0, "success is not logged as an error");
    virtpci_pci_address_parse("zz", &a);
    CHECK(seen.calls == 1 && seen.level == VIRTPCI_LOG_ERROR, "calls %d level %d", seen.calls,
          seen.level);
    CHECK(strstr(seen.last, "invalid argument: PCI address 'zz'") == seen.last, "%s", seen.last);
    virtpci_set_log_callback(NULL, NULL);
    virtpci_pci_address_parse("zz", &a);
    CHECK(seen.calls == 1, "removed callback not called");
}

int main(void)
{
    /* meson.build's project version, Cargo.toml's and the library's must agree. */
    CHECK_STR(virtpci_version(), EXPECTED_VERSION);
    test_error_codes_are_frozen();
    test_parse_and_format();
    test_bad_input();
    test_error_is_thread_local();
    test_log_callback();
    return check_exit_status("test-address");
}
