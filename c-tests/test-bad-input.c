/* Bad input through every exported function (issue 17): every pointer argument NULL; every
 * string argument not UTF-8, empty, 1 MiB and 64 MiB long; every XML argument also nested
 * 100,000 deep, an entity bomb, undefined and invalid references. Each call must fail (-1 or
 * NULL) with an error code and a message of at most MAX_MESSAGE bytes, also as given to the
 * log callback, and return before a watchdog alarm (WATCHDOG_SECONDS, scaled by
 * VIRTPCI_TEST_TIME_SCALE under valgrind) ends the process; run under valgrind and ASan in
 * CI, any leak or memory error fails it too.
 *
 * The exported functions are read from symbols.txt (argv[1]): a function without a case
 * below fails the test, so a new function must come with its bad-input case.
 *
 * A few arguments may be NULL by the header (a NULL sysfs root means /sys, a NULL fault kind
 * any kind, a NULL report is not wanted); those calls may succeed. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "virtpci.h"

/* The bound the README promises for every error message. */
#define MAX_MESSAGE 1024
#define WATCHDOG_SECONDS 5

/* ---- watchdog and checks -------------------------------------------------------------- */

static const char *current = "";
static unsigned watchdog_seconds = WATCHDOG_SECONDS;
static size_t longest_log;
static unsigned log_calls;

static void on_alarm(int sig)
{
    (void)sig;
    static const char head[] = "FAIL watchdog: no return within the time limit from ";
    ssize_t ignored = write(2, head, sizeof head - 1);
    ignored = write(2, current, strlen(current));
    ignored = write(2, "\n", 1);
    (void)ignored;
    _exit(1);
}

static void on_log(int level, const char *message, void *opaque)
{
    (void)level;
    (void)opaque;
    size_t len = strlen(message);
    if (len > longest_log)
        longest_log = len;
    log_calls++;
}

static void begin(const char *what)
{
    current = what;
    longest_log = 0;
    log_calls = 0;
    alarm(watchdog_seconds);
}

static void end(void)
{
    alarm(0);
}

/* The last error after a failed call. */
static void check_error(const char *what)
{
    int code = virtpci_last_error_code();
    const char *msg = virtpci_last_error_message();
    CHECK(code != VIRTPCI_ERR_OK, "%s: failed without an error code", what);
    CHECK(msg && *msg, "%s: empty message", what);
    size_t len = msg ? strlen(msg) : 0;
    CHECK(len <= MAX_MESSAGE, "%s: message of %zu bytes: %.120s...", what, len, msg);
    CHECK(log_calls > 0, "%s: the error was not logged", what);
    CHECK(longest_log <= MAX_MESSAGE, "%s: log message of %zu bytes", what, longest_log);
}

/* A call that must fail. */
static void expect_failure(const char *what, int failed)
{
    CHECK(failed, "%s: accepted", what);
    if (failed)
        check_error(what);
}

/* A call that may succeed (an optional argument, or a check that belongs elsewhere). */
static void allow_success(const char *what, int failed)
{
    if (failed)
        check_error(what);
    else
        CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OK, "%s: success with an error", what);
}

#define FAILS(what, call)                 \
    do {                                  \
        begin(what);                      \
        int failed_ = (call);             \
        end();                            \
        expect_failure(what, failed_);    \
    } while (0)

#define MAY_FAIL(what, call)              \
    do {                                  \
        begin(what);                      \
        int failed_ = (call);             \
        end();                            \
        allow_success(what, failed_);     \
    } while (0)

/* ---- inputs --------------------------------------------------------------------------- */

struct input {
    const char *name;
    const char *text;
};

enum { N_STRINGS = 5, N_XML = N_STRINGS + 6 };
static struct input inputs[N_XML];

static char *filled(size_t len, char c)
{
    char *s = malloc(len + 1);
    if (!s) {
        perror("malloc");
        exit(1);
    }
    memset(s, c, len);
    s[len] = '\0';
    return s;
}

static char *deep_xml(size_t depth)
{
    char *s = malloc(depth * 7 + 1);
    if (!s) {
        perror("malloc");
        exit(1);
    }
    char *p = s;
    for (size_t i = 0; i < depth; i++, p += 3)
        memcpy(p, "<a>", 3);
    for (size_t i = 0; i < depth; i++, p += 4)
        memcpy(p, "</a>", 4);
    *p = '\0';
    return s;
}

#define DOMAIN_WITH(name)                                                                   \
    "<domain type='kvm'><name>" name "</name>"                                              \
    "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>"

static const char BILLION_LAUGHS[] =
    "<!DOCTYPE domain [<!ENTITY l0 'ha'>"
    "<!ENTITY l1 '&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;'>"
    "<!ENTITY l2 '&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;'>"
    "<!ENTITY l3 '&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;'>"
    "<!ENTITY l4 '&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;'>"
    "<!ENTITY l5 '&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;'>"
    "<!ENTITY l6 '&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;'>"
    "<!ENTITY l7 '&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;'>"
    "<!ENTITY l8 '&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;'>"
    "<!ENTITY l9 '&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;'>]>"
    DOMAIN_WITH("&l9;");

static void make_inputs(void)
{
    int i = 0;
    inputs[i++] = (struct input){ "NULL", NULL };
    inputs[i++] = (struct input){ "non-UTF-8", "\xff\xfe\xc3(\x80" };
    inputs[i++] = (struct input){ "empty", "" };
    inputs[i++] = (struct input){ "1 MiB", filled(1u << 20, 'Q') };
    inputs[i++] = (struct input){ "64 MiB", filled(64u << 20, 'Q') };
    inputs[i++] = (struct input){ "100k-deep XML", deep_xml(100000) };
    inputs[i++] = (struct input){ "billion laughs", BILLION_LAUGHS };
    inputs[i++] = (struct input){ "external entity",
        "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>" DOMAIN_WITH("&x;") };
    inputs[i++] = (struct input){ "undefined entity", DOMAIN_WITH("a&x;b") };
    inputs[i++] = (struct input){ "invalid character reference", DOMAIN_WITH("a&#1;b") };
    /* An attribute value of 1 MiB ending in an undefined entity. */
    const char *head = "<domain type='";
    const char *tail = "&x;'><name>g</name></domain>";
    size_t n = 1u << 20;
    char *s = malloc(strlen(head) + n + strlen(tail) + 1);
    if (!s)
        exit(1);
    strcpy(s, head);
    memset(s + strlen(head), 'Q', n);
    strcpy(s + strlen(head) + n, tail);
    inputs[i++] = (struct input){ "1 MiB attribute value", s };
    if (i != N_XML) {
        fprintf(stderr, "%d inputs, %d expected\n", i, N_XML);
        exit(2);
    }
}

static void free_inputs(void)
{
    for (int i = 0; i < N_XML; i++)
        if (!strcmp(inputs[i].name, "1 MiB") || !strcmp(inputs[i].name, "64 MiB") ||
            !strcmp(inputs[i].name, "100k-deep XML") ||
            !strcmp(inputs[i].name, "1 MiB attribute value"))
            free((char *)inputs[i].text);
}

/* "function: argument = input" in a static buffer, for messages. */
static const char *label(const char *func, const char *arg, const char *input)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s: %s = %s", func, arg, input);
    return buf;
}

/* ---- fixtures ------------------------------------------------------------------------- */

static const char *GUEST =
    "<domain type='kvm'><name>g</name><os><type arch='x86_64' machine='q35'>hvm</type></os>"
    "<devices><controller type='pci' index='0' model='pcie-root'/>"
    "<controller type='pci' index='1' model='pcie-root-port'/>"
    "<controller type='pci' index='2' model='pcie-root-port'/>"
    "<memballoon model='none'/></devices></domain>";
static const char *NIC =
    "<interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>";
static const char *NUMA_HOSTDEV_GUEST =
    "<domain type='kvm'><name>g</name><os><type arch='x86_64' machine='q35'>hvm</type></os>"
    "<cpu><numa><cell id='0' cpus='0' memory='262144' unit='KiB'/></numa></cpu><devices>"
    "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0' bus='0x42' "
    "slot='0' function='0'/></source></hostdev></devices></domain>";
static const VirtpciPciAddress ADDR = { 0, 1, 0, 0 };
static const VirtpciPciAddress MISSING = { 0, 0x42, 0, 0 };

static char sysfs_dir[] = "/tmp/virtpci-bad-input-sysfs-XXXXXX";
static char state_dir[] = "/tmp/virtpci-bad-input-state-XXXXXX";
static VirtpciHost *host;
static VirtpciHostdevManager *mgr;
static VirtpciAddressSet *set;
static VirtpciSlotPlan *plan;

static int ignore_address(const VirtpciPciAddress *a, void *opaque)
{
    (void)a;
    (void)opaque;
    return 0;
}

/* ---- one case per exported function --------------------------------------------------- */

/* Each string input (n: N_STRINGS, or N_XML for XML arguments) in turn. */
#define EACH_INPUT(n) for (int k_ = 0; k_ < (n); k_++)
#define IN inputs[k_].text
#define IN_NAME inputs[k_].name

static void case_domain_check_abi_stability(void)
{
    const char *f = "virtpci_domain_check_abi_stability";
    char *report = NULL;
    EACH_INPUT(N_XML) {
        FAILS(label(f, "old_xml", IN_NAME),
              virtpci_domain_check_abi_stability(IN, GUEST, 0, &report) < 0);
        FAILS(label(f, "new_xml", IN_NAME),
              virtpci_domain_check_abi_stability(GUEST, IN, 0, &report) < 0);
    }
    CHECK(report == NULL, "no report on failure");
    MAY_FAIL(label(f, "report", "NULL"), virtpci_domain_check_abi_stability(GUEST, GUEST, 0, NULL) < 0);
}

static void case_pci_address_parse(void)
{
    const char *f = "virtpci_pci_address_parse";
    VirtpciPciAddress a;
    EACH_INPUT(N_STRINGS) FAILS(label(f, "str", IN_NAME), virtpci_pci_address_parse(IN, &a) < 0);
    FAILS(label(f, "out", "NULL"), virtpci_pci_address_parse("0000:00:01.0", NULL) < 0);
    /* The 64 MiB address as an address with a long part. */
    char *text = filled(64u << 20, '0');
    memcpy(text, "0000:00:", 8);
    FAILS(label(f, "str", "64 MiB slot"), virtpci_pci_address_parse(text, &a) < 0);
    free(text);
}

static void case_pci_address_format(void)
{
    const char *f = "virtpci_pci_address_format";
    FAILS(label(f, "addr", "NULL"), virtpci_pci_address_format(NULL) == NULL);
    VirtpciPciAddress bad = { 0x10000, 0, 0, 0 };
    FAILS(label(f, "addr", "out of range"), virtpci_pci_address_format(&bad) == NULL);
}

static void case_domain_assign_pci_addresses(void)
{
    const char *f = "virtpci_domain_assign_pci_addresses";
    char *out = NULL;
    EACH_INPUT(N_XML) FAILS(label(f, "domain_xml", IN_NAME),
                            virtpci_domain_assign_pci_addresses(IN, 0, &out) < 0);
    FAILS(label(f, "out_xml", "NULL"), virtpci_domain_assign_pci_addresses(GUEST, 0, NULL) < 0);
    CHECK(out == NULL, "no output on failure");
}

static void case_domain_assign_pci_addresses_with_options(void)
{
    const char *f = "virtpci_domain_assign_pci_addresses_with_options";
    VirtpciAssignOptions o = { sizeof o, 0, -1, 0, NULL, NULL };
    VirtpciAssignOptions unknown_level = { sizeof o, 0, -1, 8000000, NULL, NULL };
    char *out = NULL;
    EACH_INPUT(N_XML) FAILS(label(f, "domain_xml", IN_NAME),
                            virtpci_domain_assign_pci_addresses_with_options(IN, &o, &out) < 0);
    FAILS(label(f, "opts->libvirt_version", "8000000"),
          virtpci_domain_assign_pci_addresses_with_options(GUEST, &unknown_level, &out) < 0);
    FAILS(label(f, "opts", "NULL"),
          virtpci_domain_assign_pci_addresses_with_options(GUEST, NULL, &out) < 0);
    FAILS(label(f, "out_xml", "NULL"),
          virtpci_domain_assign_pci_addresses_with_options(GUEST, &o, NULL) < 0);
    /* Mirroring host NUMA nodes: a hostdev the (empty) host does not have. */
    VirtpciAssignOptions mirror = { sizeof o, 0, -1, 0, host, NULL };
    FAILS(label(f, "opts->numa_host", "device missing on the host"),
          virtpci_domain_assign_pci_addresses_with_options(NUMA_HOSTDEV_GUEST, &mirror, &out) < 0);
    /* Emulator capabilities: a name that is not UTF-8. */
    static const char *const bad_caps[] = { "pcie-root-port", "\xff\xfe", NULL };
    VirtpciAssignOptions caps = { sizeof o, 0, -1, 0, NULL, bad_caps };
    FAILS(label(f, "opts->emulator_caps", "non-UTF-8"),
          virtpci_domain_assign_pci_addresses_with_options(GUEST, &caps, &out) < 0);
    CHECK(out == NULL, "no output on failure");
}

static void case_address_set_new_from_xml_with_options(void)
{
    const char *f = "virtpci_address_set_new_from_xml_with_options";
    VirtpciAssignOptions o = { sizeof o, 0, -1, 0, NULL, NULL };
    EACH_INPUT(N_XML) FAILS(label(f, "xml", IN_NAME),
                            virtpci_address_set_new_from_xml_with_options(IN, &o) == NULL);
    FAILS(label(f, "opts", "NULL"), virtpci_address_set_new_from_xml_with_options(GUEST, NULL) == NULL);
    static const char *const bad_caps[] = { "\xff\xfe", NULL };
    VirtpciAssignOptions caps = { sizeof o, 0, -1, 0, NULL, bad_caps };
    FAILS(label(f, "opts->emulator_caps", "non-UTF-8"),
          virtpci_address_set_new_from_xml_with_options(GUEST, &caps) == NULL);
}

/* Takes no argument and cannot fail: a static NULL-terminated list. */
static void case_emulator_cap_names(void)
{
    const char *const *names = virtpci_emulator_cap_names();
    CHECK(names && names[0], "a list");
}

static void case_domain_explain_pci_addresses(void)
{
    const char *f = "virtpci_domain_explain_pci_addresses";
    VirtpciAssignOptions unknown_level = { sizeof unknown_level, 0, -1, 8000000, NULL, NULL };
    char *out = NULL;
    EACH_INPUT(N_XML) FAILS(label(f, "domain_xml", IN_NAME),
                            virtpci_domain_explain_pci_addresses(IN, NULL, 0, &out) < 0);
    FAILS(label(f, "opts->libvirt_version", "8000000"),
          virtpci_domain_explain_pci_addresses(GUEST, &unknown_level, 0, &out) < 0);
    FAILS(label(f, "flags", "0x100"),
          virtpci_domain_explain_pci_addresses(GUEST, NULL, 0x100, &out) < 0);
    FAILS(label(f, "out", "NULL"),
          virtpci_domain_explain_pci_addresses(GUEST, NULL, VIRTPCI_EXPLAIN_JSON, NULL) < 0);
    CHECK(out == NULL, "no output on failure");
}

static void case_address_set_new_from_xml(void)
{
    const char *f = "virtpci_address_set_new_from_xml";
    EACH_INPUT(N_XML) FAILS(label(f, "xml", IN_NAME), virtpci_address_set_new_from_xml(IN) == NULL);
}

static void case_address_set_reserve_next(void)
{
    const char *f = "virtpci_address_set_reserve_next";
    VirtpciPciAddress a;
    FAILS(label(f, "set", "NULL"), virtpci_address_set_reserve_next(NULL, NIC, &a) < 0);
    FAILS(label(f, "out", "NULL"), virtpci_address_set_reserve_next(set, NIC, NULL) < 0);
    EACH_INPUT(N_XML) FAILS(label(f, "device_xml", IN_NAME),
                            virtpci_address_set_reserve_next(set, IN, &a) < 0);
}

static void case_address_set_reserve_next_with_preferences(void)
{
    const char *f = "virtpci_address_set_reserve_next_with_preferences";
    VirtpciAddressPreferences p = { sizeof p, -1, VIRTPCI_BUS_ANY, -1 };
    VirtpciPciAddress a;
    FAILS(label(f, "set", "NULL"),
          virtpci_address_set_reserve_next_with_preferences(NULL, NIC, &p, &a) < 0);
    FAILS(label(f, "prefs", "NULL"),
          virtpci_address_set_reserve_next_with_preferences(set, NIC, NULL, &a) < 0);
    FAILS(label(f, "out", "NULL"),
          virtpci_address_set_reserve_next_with_preferences(set, NIC, &p, NULL) < 0);
    EACH_INPUT(N_XML) FAILS(label(f, "device_xml", IN_NAME),
                            virtpci_address_set_reserve_next_with_preferences(set, IN, &p, &a) < 0);
}

static void case_address_set_reserve(void)
{
    const char *f = "virtpci_address_set_reserve";
    VirtpciPciAddress a = { 0, 2, 0, 0 };
    FAILS(label(f, "set", "NULL"), virtpci_address_set_reserve(NULL, &a, NIC) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_address_set_reserve(set, NULL, NIC) < 0);
    EACH_INPUT(N_XML) FAILS(label(f, "device_xml", IN_NAME),
                            virtpci_address_set_reserve(set, &a, IN) < 0);
}

static void case_address_set_release(void)
{
    const char *f = "virtpci_address_set_release";
    FAILS(label(f, "set", "NULL"), virtpci_address_set_release(NULL, &ADDR) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_address_set_release(set, NULL) < 0);
}

static void case_address_set_reserve_next_guest(void)
{
    const char *f = "virtpci_address_set_reserve_next_guest";
    VirtpciGuestAddress a;
    FAILS(label(f, "set", "NULL"), virtpci_address_set_reserve_next_guest(NULL, NIC, &a) < 0);
    FAILS(label(f, "out", "NULL"), virtpci_address_set_reserve_next_guest(set, NIC, NULL) < 0);
    EACH_INPUT(N_XML) FAILS(label(f, "device_xml", IN_NAME),
                            virtpci_address_set_reserve_next_guest(set, IN, &a) < 0);
}

static void case_address_set_release_guest(void)
{
    const char *f = "virtpci_address_set_release_guest";
    VirtpciGuestAddress pci = { VIRTPCI_GUEST_ADDRESS_PCI, ADDR, 0, 0, 0, 0, 0, 0 };
    VirtpciGuestAddress kind = { 9, ADDR, 0, 0, 0, 0, 0, 0 };
    VirtpciGuestAddress range = { VIRTPCI_GUEST_ADDRESS_CCW, ADDR, 0, 0, 0, 0xff, 0, 0 };
    FAILS(label(f, "set", "NULL"), virtpci_address_set_release_guest(NULL, &pci) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_address_set_release_guest(set, NULL) < 0);
    FAILS(label(f, "addr", "unknown kind"), virtpci_address_set_release_guest(set, &kind) < 0);
    FAILS(label(f, "addr", "cssid out of range"),
          virtpci_address_set_release_guest(set, &range) < 0);
}

static void case_address_set_free(void)
{
    virtpci_address_set_free(NULL);
}

static void case_version(void)
{
    const char *v = virtpci_version();
    CHECK(v && *v, "a version");
}

/* The error slot itself: never NULL, "no error" after a reset, bounded after a huge input. */
static void case_last_error(void)
{
    virtpci_reset_last_error();
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OK, "reset");
    CHECK_STR(virtpci_last_error_message(), "no error");
}

static void case_string_free(void)
{
    virtpci_string_free(NULL);
}

static void case_set_log_callback(void)
{
    /* NULL removes the callback; put ours back. */
    virtpci_set_log_callback(NULL, NULL);
    VirtpciPciAddress a;
    CHECK(virtpci_pci_address_parse("x", &a) < 0, "fails without a callback too");
    virtpci_set_log_callback(on_log, NULL);
}

/* A host opener with each string as its root; a NULL root may be valid (`null_ok`). */
static void host_roots(const char *f, const char *arg, VirtpciHost *(*open)(const char *),
                       int null_ok)
{
    EACH_INPUT(N_STRINGS) {
        const char *what = label(f, arg, IN_NAME);
        begin(what);
        VirtpciHost *h = open(IN);
        end();
        if (IN == NULL && null_ok)
            allow_success(what, h == NULL);
        else
            expect_failure(what, h == NULL);
        virtpci_host_free(h);
    }
}

static void case_host_open(void)
{
    /* NULL is /sys */
    host_roots("virtpci_host_open", "sysfs_root", virtpci_host_open, 1);
}

static void case_host_open_simulated(void)
{
    host_roots("virtpci_host_open_simulated", "root", virtpci_host_open_simulated, 0);
}

static void case_host_free(void)
{
    virtpci_host_free(NULL);
}

static void case_get_iommu_group_num(void)
{
    const char *f = "virtpci_pci_address_get_iommu_group_num";
    FAILS(label(f, "host", "NULL"), virtpci_pci_address_get_iommu_group_num(NULL, &ADDR) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_pci_address_get_iommu_group_num(host, NULL) < 0);
    FAILS(label(f, "addr", "missing"), virtpci_pci_address_get_iommu_group_num(host, &MISSING) < 0);
}

static void case_iommu_group_iterate(void)
{
    const char *f = "virtpci_pci_address_iommu_group_iterate";
    FAILS(label(f, "host", "NULL"),
          virtpci_pci_address_iommu_group_iterate(NULL, &ADDR, ignore_address, NULL) < 0);
    FAILS(label(f, "orig", "NULL"),
          virtpci_pci_address_iommu_group_iterate(host, NULL, ignore_address, NULL) < 0);
    MAY_FAIL(label(f, "cb", "NULL"),
             virtpci_pci_address_iommu_group_iterate(host, &MISSING, NULL, NULL) < 0);
}

static void case_get_iommu_group_addresses(void)
{
    const char *f = "virtpci_pci_address_get_iommu_group_addresses";
    VirtpciPciAddress *list = NULL;
    size_t n = 0;
    FAILS(label(f, "host", "NULL"),
          virtpci_pci_address_get_iommu_group_addresses(NULL, &ADDR, &list, &n) < 0);
    FAILS(label(f, "addr", "NULL"),
          virtpci_pci_address_get_iommu_group_addresses(host, NULL, &list, &n) < 0);
    FAILS(label(f, "out", "NULL"),
          virtpci_pci_address_get_iommu_group_addresses(host, &ADDR, NULL, &n) < 0);
    FAILS(label(f, "n", "NULL"),
          virtpci_pci_address_get_iommu_group_addresses(host, &ADDR, &list, NULL) < 0);
    virtpci_pci_address_list_free(list);
}

static void case_pci_address_list_free(void)
{
    virtpci_pci_address_list_free(NULL);
}

static void case_host_get_driver(void)
{
    const char *f = "virtpci_host_get_driver";
    char *driver = NULL;
    FAILS(label(f, "host", "NULL"), virtpci_host_get_driver(NULL, &ADDR, &driver) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_host_get_driver(host, NULL, &driver) < 0);
    FAILS(label(f, "driver", "NULL"), virtpci_host_get_driver(host, &MISSING, NULL) < 0);
    free(driver);
}

static void case_host_iommu_groups_json(void)
{
    const char *f = "virtpci_host_iommu_groups_json";
    char *json = NULL;
    FAILS(label(f, "host", "NULL"), virtpci_host_iommu_groups_json(NULL, &json) < 0);
    FAILS(label(f, "json", "NULL"), virtpci_host_iommu_groups_json(host, NULL) < 0);
    CHECK(json == NULL, "no output on failure");
}

static void case_host_device_json(void)
{
    const char *f = "virtpci_host_device_json";
    const VirtpciPciAddress out_of_range = { 0, 0, 0x20, 0 };
    char *json = NULL;
    FAILS(label(f, "host", "NULL"), virtpci_host_device_json(NULL, &ADDR, &json) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_host_device_json(host, NULL, &json) < 0);
    FAILS(label(f, "addr", "slot 0x20"), virtpci_host_device_json(host, &out_of_range, &json) < 0);
    FAILS(label(f, "addr", "missing"), virtpci_host_device_json(host, &MISSING, &json) < 0);
    FAILS(label(f, "json", "NULL"), virtpci_host_device_json(host, &ADDR, NULL) < 0);
    CHECK(json == NULL, "no output on failure");
}

static void case_host_inject_fault(void)
{
    const char *f = "virtpci_host_inject_fault";
    FAILS(label(f, "host", "NULL"), virtpci_host_inject_fault(NULL, "unbind", 1, 5) < 0);
    EACH_INPUT(N_STRINGS) {
        if (IN == NULL) /* any kind */
            continue;
        FAILS(label(f, "kind", IN_NAME), virtpci_host_inject_fault(host, IN, 1, 5) < 0);
    }
}

static void case_host_set_modules_dir(void)
{
    const char *f = "virtpci_host_set_modules_dir";
    FAILS(label(f, "host", "NULL"), virtpci_host_set_modules_dir(NULL, "/lib/modules/x") < 0);
    FAILS(label(f, "dir", "empty"), virtpci_host_set_modules_dir(host, "") < 0);
}

static void case_host_set_module_loading(void)
{
    const char *f = "virtpci_host_set_module_loading";
    FAILS(label(f, "host", "NULL"), virtpci_host_set_module_loading(NULL, 1) < 0);
}

static void case_host_get_vfio_cdev(void)
{
    const char *f = "virtpci_host_get_vfio_cdev";
    char *dir = NULL, *node = NULL;
    FAILS(label(f, "host", "NULL"), virtpci_host_get_vfio_cdev(NULL, &ADDR, &dir, &node) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_host_get_vfio_cdev(host, NULL, &dir, &node) < 0);
    FAILS(label(f, "addr", "missing"), virtpci_host_get_vfio_cdev(host, &MISSING, &dir, &node) < 0);
    FAILS(label(f, "outputs", "both NULL"), virtpci_host_get_vfio_cdev(host, &ADDR, NULL, NULL) < 0);
    free(dir);
    free(node);
}

static void case_host_set_reset_methods(void)
{
    const char *f = "virtpci_host_set_reset_methods";
    FAILS(label(f, "host", "NULL"), virtpci_host_set_reset_methods(NULL, &ADDR, "flr") < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_host_set_reset_methods(host, NULL, "flr") < 0);
    FAILS(label(f, "addr", "missing"), virtpci_host_set_reset_methods(host, &MISSING, "flr") < 0);
    EACH_INPUT(N_STRINGS) {
        if (IN == NULL || IN[0] == '\0') /* the default */
            continue;
        FAILS(label(f, "methods", IN_NAME), virtpci_host_set_reset_methods(host, &ADDR, IN) < 0);
    }
}

static void case_hostdev_manager_new(void)
{
    const char *f = "virtpci_hostdev_manager_new";
    FAILS(label(f, "host", "NULL"), virtpci_hostdev_manager_new(NULL, state_dir) == NULL);
    EACH_INPUT(N_STRINGS) {
        const char *what = label(f, "state_dir", IN_NAME);
        begin(what);
        VirtpciHostdevManager *m = virtpci_hostdev_manager_new(host, IN);
        end();
        expect_failure(what, m == NULL);
        virtpci_hostdev_manager_free(m);
    }
}

static void case_hostdev_manager_free(void)
{
    virtpci_hostdev_manager_free(NULL);
}

static void case_hostdev_list_devices(void)
{
    const char *f = "virtpci_hostdev_list_devices";
    VirtpciHostdevStatus *list = NULL;
    size_t n = 0;
    FAILS(label(f, "mgr", "NULL"), virtpci_hostdev_list_devices(NULL, &list, &n) < 0);
    FAILS(label(f, "devices", "NULL"), virtpci_hostdev_list_devices(mgr, NULL, &n) < 0);
    FAILS(label(f, "n", "NULL"), virtpci_hostdev_list_devices(mgr, &list, NULL) < 0);
    virtpci_hostdev_status_list_free(list, n);
}

static void case_hostdev_status_json(void)
{
    const char *f = "virtpci_hostdev_status_json";
    char *json = NULL;
    FAILS(label(f, "mgr", "NULL"), virtpci_hostdev_status_json(NULL, &json) < 0);
    FAILS(label(f, "json", "NULL"), virtpci_hostdev_status_json(mgr, NULL) < 0);
    CHECK(json == NULL, "no output on failure");
}

static void case_hostdev_status_list_free(void)
{
    virtpci_hostdev_status_list_free(NULL, 0);
}

static void case_host_faults(void)
{
    FAILS(label("virtpci_host_clear_faults", "host", "NULL"), virtpci_host_clear_faults(NULL) < 0);
    FAILS(label("virtpci_host_faults_fired", "host", "NULL"), virtpci_host_faults_fired(NULL) < 0);
}

/* A device that does not exist on the (empty) host, with `driver` as its driver. */
static VirtpciHostdev hostdev_with(const char *driver)
{
    VirtpciHostdev h = { { 0, 0x42, 0, 0 }, 1, 0, driver };
    return h;
}

/* The functions that take a device list, with prepare's uuid and flags fixed. */
typedef int (*list_fn)(VirtpciHostdevManager *m, const char *drv, const char *dom,
                       const VirtpciHostdev *hostdevs, size_t n);

static int prepare_list(VirtpciHostdevManager *m, const char *drv, const char *dom,
                        const VirtpciHostdev *hostdevs, size_t n)
{
    return virtpci_hostdev_prepare_pci_devices(m, drv, dom, NULL, hostdevs, n, 0);
}

/* NULL manager and list; names: NULL, not UTF-8, empty and over their bound all fail. */
static void list_arguments(const char *f, list_fn call)
{
    VirtpciHostdev h = hostdev_with(NULL);
    FAILS(label(f, "mgr", "NULL"), call(NULL, "QEMU", "d", &h, 1) < 0);
    FAILS(label(f, "hostdevs", "NULL with n = 1"), call(mgr, "QEMU", "d", NULL, 1) < 0);
    EACH_INPUT(N_STRINGS) {
        FAILS(label(f, "drv_name", IN_NAME), call(mgr, IN, "dom", NULL, 0) < 0);
        FAILS(label(f, "dom_name", IN_NAME), call(mgr, "QEMU", IN, NULL, 0) < 0);
    }
}

static void case_hostdev_prepare_pci_devices(void)
{
    const char *f = "virtpci_hostdev_prepare_pci_devices";
    unsigned char uuid[16] = { 1 };
    list_arguments(f, prepare_list);
    MAY_FAIL(label(f, "uuid", "NULL"),
             virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "d", NULL, NULL, 0, 0) < 0);
    EACH_INPUT(N_STRINGS) {
        if (IN == NULL) /* vfio-pci */
            continue;
        VirtpciHostdev bad = hostdev_with(IN);
        FAILS(label(f, "hostdevs[0].driver", IN_NAME),
              virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "d", uuid, &bad, 1, 0) < 0);
    }
}

static int prepare_with_net_list(VirtpciHostdevManager *m, const char *drv, const char *dom,
                                 const VirtpciHostdev *hostdevs, size_t n)
{
    return virtpci_hostdev_prepare_pci_devices_with_net(m, drv, dom, NULL, hostdevs, n, NULL, 0, 0);
}

static void case_hostdev_prepare_pci_devices_with_net(void)
{
    const char *f = "virtpci_hostdev_prepare_pci_devices_with_net";
    list_arguments(f, prepare_with_net_list);
    VirtpciHostdev h = hostdev_with(NULL);
    VirtpciHostdevNet net = { { 0, 0x42, 0, 0 }, "52:54:00:aa:bb:cc", 42 };
    FAILS(label(f, "nets", "NULL with n_nets = 1"),
          virtpci_hostdev_prepare_pci_devices_with_net(mgr, "QEMU", "d", NULL, &h, 1, NULL, 1, 0) < 0);
    EACH_INPUT(N_STRINGS) {
        if (IN == NULL) /* no MAC: a valid entry */
            continue;
        VirtpciHostdevNet bad = net;
        bad.mac = IN;
        FAILS(label(f, "nets[0].mac", IN_NAME),
              virtpci_hostdev_prepare_pci_devices_with_net(mgr, "QEMU", "d", NULL, &h, 1, &bad, 1,
                                                           0) < 0);
    }
    VirtpciHostdevNet vlan = net;
    vlan.vlan = 4096;
    FAILS(label(f, "nets[0].vlan", "4096"),
          virtpci_hostdev_prepare_pci_devices_with_net(mgr, "QEMU", "d", NULL, &h, 1, &vlan, 1, 0) < 0);
    VirtpciHostdevNet other = net;
    other.source.bus = 0x43;
    FAILS(label(f, "nets[0].source", "not a hostdev"),
          virtpci_hostdev_prepare_pci_devices_with_net(mgr, "QEMU", "d", NULL, &h, 1, &other, 1, 0) < 0);
    VirtpciHostdevNet twice[2] = { net, net };
    FAILS(label(f, "nets", "one hostdev twice"),
          virtpci_hostdev_prepare_pci_devices_with_net(mgr, "QEMU", "d", NULL, &h, 1, twice, 2, 0) < 0);
}

static int prepare_ext_list(VirtpciHostdevManager *m, const char *drv, const char *dom,
                            const VirtpciHostdev *hostdevs, size_t n)
{
    return virtpci_hostdev_prepare_pci_devices_ext(m, drv, dom, NULL, hostdevs, n, NULL, 0);
}

static void case_hostdev_prepare_pci_devices_ext(void)
{
    const char *f = "virtpci_hostdev_prepare_pci_devices_ext";
    list_arguments(f, prepare_ext_list);
    VirtpciHostdev h = hostdev_with(NULL);
    VirtpciHostdevDriver drv = { { 0, 0x42, 0, 0 }, "vfio-pci", 1 };
    VirtpciHostdevPrepareExtras x = { sizeof(x), NULL, 0, &drv, 1 };
#define EXT(extras) virtpci_hostdev_prepare_pci_devices_ext(mgr, "QEMU", "d", NULL, &h, 1, extras, 0)
    VirtpciHostdevPrepareExtras small = x;
    small.size = sizeof(size_t);
    FAILS(label(f, "extras->size", "too small"), EXT(&small) < 0);
    small.size = 0;
    FAILS(label(f, "extras->size", "0"), EXT(&small) < 0);
    /* a later header's struct: unknown fields set are refused */
    struct { VirtpciHostdevPrepareExtras x; size_t later; } big = { x, 7 };
    big.x.size = sizeof(big);
    FAILS(label(f, "extras->size", "larger, unknown field set"), EXT(&big.x) < 0);
    VirtpciHostdevPrepareExtras nulls = x;
    nulls.drivers = NULL;
    FAILS(label(f, "extras->drivers", "NULL with n_drivers = 1"), EXT(&nulls) < 0);
    nulls = x;
    nulls.n_nets = 1;
    FAILS(label(f, "extras->nets", "NULL with n_nets = 1"), EXT(&nulls) < 0);
    EACH_INPUT(N_STRINGS) {
        if (IN == NULL) /* no model: chosen from modules.alias */
            continue;
        VirtpciHostdevDriver bad = drv;
        bad.model = IN;
        VirtpciHostdevPrepareExtras bx = x;
        bx.drivers = &bad;
        FAILS(label(f, "extras->drivers[0].model", IN_NAME), EXT(&bx) < 0);
    }
    VirtpciHostdevDriver other = drv;
    other.source.bus = 0x43;
    VirtpciHostdevPrepareExtras ox = x;
    ox.drivers = &other;
    FAILS(label(f, "extras->drivers[0].source", "not a hostdev"), EXT(&ox) < 0);
    VirtpciHostdevDriver twice[2] = { drv, drv };
    VirtpciHostdevPrepareExtras tx = x;
    tx.drivers = twice;
    tx.n_drivers = 2;
    FAILS(label(f, "extras->drivers", "one hostdev twice"), EXT(&tx) < 0);
#undef EXT
}

static void case_hostdev_reattach_pci_devices(void)
{
    list_arguments("virtpci_hostdev_reattach_pci_devices", virtpci_hostdev_reattach_pci_devices);
}

static void case_hostdev_update_active_pci_devices(void)
{
    list_arguments("virtpci_hostdev_update_active_pci_devices",
                   virtpci_hostdev_update_active_pci_devices);
}

static void case_hostdev_pci_node_device_detach(void)
{
    const char *f = "virtpci_hostdev_pci_node_device_detach";
    FAILS(label(f, "mgr", "NULL"), virtpci_hostdev_pci_node_device_detach(NULL, &MISSING, NULL, 0) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_hostdev_pci_node_device_detach(mgr, NULL, NULL, 0) < 0);
    EACH_INPUT(N_STRINGS) {
        if (IN == NULL) /* vfio-pci */
            continue;
        FAILS(label(f, "driver", IN_NAME),
              virtpci_hostdev_pci_node_device_detach(mgr, &MISSING, IN, 0) < 0);
    }
}

static void case_hostdev_pci_node_device_reattach(void)
{
    const char *f = "virtpci_hostdev_pci_node_device_reattach";
    FAILS(label(f, "mgr", "NULL"), virtpci_hostdev_pci_node_device_reattach(NULL, &MISSING) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_hostdev_pci_node_device_reattach(mgr, NULL) < 0);
}

static void case_hostdev_pci_node_device_reset(void)
{
    const char *f = "virtpci_hostdev_pci_node_device_reset";
    FAILS(label(f, "mgr", "NULL"), virtpci_hostdev_pci_node_device_reset(NULL, &MISSING) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_hostdev_pci_node_device_reset(mgr, NULL) < 0);
}

/* The domain XML functions: NULL manager, driver names as above, every XML input. */
static const char *const HOSTDEV_DOMAIN =
    "<domain type='kvm'><name>d</name><devices><hostdev mode='subsystem' type='pci' "
    "managed='yes'><source><address domain='0' bus='0x42' slot='0' function='0'/></source>"
    "</hostdev></devices></domain>";

static void case_hostdev_prepare_domain(void)
{
    const char *f = "virtpci_hostdev_prepare_domain";
    FAILS(label(f, "mgr", "NULL"), virtpci_hostdev_prepare_domain(NULL, "QEMU", HOSTDEV_DOMAIN, 0) < 0);
    FAILS(label(f, "drv_name", "NULL"), virtpci_hostdev_prepare_domain(mgr, NULL, HOSTDEV_DOMAIN, 0) < 0);
    EACH_INPUT(N_XML) FAILS(label(f, "domain_xml", IN_NAME),
                            virtpci_hostdev_prepare_domain(mgr, "QEMU", IN, 0) < 0);
}

static void case_hostdev_reattach_domain(void)
{
    const char *f = "virtpci_hostdev_reattach_domain";
    FAILS(label(f, "mgr", "NULL"), virtpci_hostdev_reattach_domain(NULL, "QEMU", HOSTDEV_DOMAIN) < 0);
    FAILS(label(f, "drv_name", "NULL"), virtpci_hostdev_reattach_domain(mgr, NULL, HOSTDEV_DOMAIN) < 0);
    EACH_INPUT(N_XML) FAILS(label(f, "domain_xml", IN_NAME),
                            virtpci_hostdev_reattach_domain(mgr, "QEMU", IN) < 0);
}

static void case_domain_add_missing_group_members(void)
{
    const char *f = "virtpci_domain_add_missing_group_members";
    char *out = NULL;
    FAILS(label(f, "host", "NULL"),
          virtpci_domain_add_missing_group_members(NULL, HOSTDEV_DOMAIN, 0, &out) < 0);
    FAILS(label(f, "out_xml", "NULL"),
          virtpci_domain_add_missing_group_members(host, HOSTDEV_DOMAIN, 0, NULL) < 0);
    FAILS(label(f, "flags", "1"),
          virtpci_domain_add_missing_group_members(host, HOSTDEV_DOMAIN, 1, &out) < 0);
    EACH_INPUT(N_XML) FAILS(label(f, "domain_xml", IN_NAME),
                            virtpci_domain_add_missing_group_members(host, IN, 0, &out) < 0);
    CHECK(out == NULL, "no output on failure");
}

static void case_hostdev_check_domain(void)
{
    const char *f = "virtpci_hostdev_check_domain";
    char *report = NULL;
    FAILS(label(f, "mgr", "NULL"),
          virtpci_hostdev_check_domain(NULL, "QEMU", HOSTDEV_DOMAIN, 0, &report) < 0);
    FAILS(label(f, "drv_name", "NULL"),
          virtpci_hostdev_check_domain(mgr, NULL, HOSTDEV_DOMAIN, 0, &report) < 0);
    FAILS(label(f, "report_json", "NULL"),
          virtpci_hostdev_check_domain(mgr, "QEMU", HOSTDEV_DOMAIN, 0, NULL) < 0);
    EACH_INPUT(N_XML) FAILS(label(f, "domain_xml", IN_NAME),
                            virtpci_hostdev_check_domain(mgr, "QEMU", IN, 0, &report) < 0);
    free(report);
}

static void case_hostdev_get_owner(void)
{
    const char *f = "virtpci_hostdev_get_owner";
    char *drv = NULL, *dom = NULL;
    FAILS(label(f, "mgr", "NULL"), virtpci_hostdev_get_owner(NULL, &ADDR, &drv, &dom) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_hostdev_get_owner(mgr, NULL, &drv, &dom) < 0);
    FAILS(label(f, "drv_name", "NULL"), virtpci_hostdev_get_owner(mgr, &ADDR, NULL, &dom) < 0);
    FAILS(label(f, "dom_name", "NULL"), virtpci_hostdev_get_owner(mgr, &ADDR, &drv, NULL) < 0);
    free(drv);
    free(dom);
}

static void case_plan_slot_attach(void)
{
    const char *f = "virtpci_address_set_plan_slot_attach";
    VirtpciSlotPlan *p = NULL;
    const char *one[1] = { NIC };
    FAILS(label(f, "set", "NULL"), virtpci_address_set_plan_slot_attach(NULL, one, 1, &p) < 0);
    FAILS(label(f, "device_xmls", "NULL"), virtpci_address_set_plan_slot_attach(set, NULL, 1, &p) < 0);
    FAILS(label(f, "out", "NULL"), virtpci_address_set_plan_slot_attach(set, one, 1, NULL) < 0);
    EACH_INPUT(N_XML) {
        const char *two[2] = { NIC, IN };
        FAILS(label(f, "device_xmls[1]", IN_NAME),
              virtpci_address_set_plan_slot_attach(set, two, 2, &p) < 0);
    }
    CHECK(p == NULL, "no plan on failure");
    /* Libvirt's prefix first, then the device (point 7). */
    const char *broken[1] = { "<interface" };
    CHECK(virtpci_address_set_plan_slot_attach(set, broken, 1, &p) < 0, "broken XML refused");
    const char *msg = virtpci_last_error_message();
    CHECK(strncmp(msg, "XML error: device 0: ", 21) == 0, "prefix first: %s", msg);
}

static void case_plan_slot_detach(void)
{
    const char *f = "virtpci_address_set_plan_slot_detach";
    VirtpciSlotPlan *p = NULL;
    FAILS(label(f, "set", "NULL"), virtpci_address_set_plan_slot_detach(NULL, &ADDR, &p) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_address_set_plan_slot_detach(set, NULL, &p) < 0);
    FAILS(label(f, "out", "NULL"), virtpci_address_set_plan_slot_detach(set, &ADDR, NULL) < 0);
    CHECK(p == NULL, "no plan on failure");
}

static void case_release_slot_plan(void)
{
    const char *f = "virtpci_address_set_release_slot_plan";
    FAILS(label(f, "set", "NULL"), virtpci_address_set_release_slot_plan(NULL, plan) < 0);
    FAILS(label(f, "plan", "NULL"), virtpci_address_set_release_slot_plan(set, NULL) < 0);
}

static void case_get_pluggability(void)
{
    const char *f = "virtpci_address_set_get_pluggability";
    int out = -1;
    char *reason = NULL;
    FAILS(label(f, "set", "NULL"), virtpci_address_set_get_pluggability(NULL, &ADDR, &out, &reason) < 0);
    FAILS(label(f, "addr", "NULL"), virtpci_address_set_get_pluggability(set, NULL, &out, &reason) < 0);
    FAILS(label(f, "out", "NULL"), virtpci_address_set_get_pluggability(set, &ADDR, NULL, &reason) < 0);
    MAY_FAIL(label(f, "reason", "NULL"), virtpci_address_set_get_pluggability(set, &ADDR, &out, NULL) < 0);
    free(reason);
}

static void case_slot_plan_items(void)
{
    const char *f = "virtpci_slot_plan_items";
    size_t n = 0;
    FAILS(label(f, "plan", "NULL"), virtpci_slot_plan_items(NULL, &n) == NULL);
    FAILS(label(f, "n", "NULL"), virtpci_slot_plan_items(plan, NULL) == NULL);
}

static void case_slot_plan_slot(void)
{
    const char *f = "virtpci_slot_plan_slot";
    VirtpciPciAddress a;
    FAILS(label(f, "plan", "NULL"), virtpci_slot_plan_slot(NULL, &a) < 0);
    FAILS(label(f, "out", "NULL"), virtpci_slot_plan_slot(plan, NULL) < 0);
}

static void case_slot_plan_free(void)
{
    virtpci_slot_plan_free(NULL);
}

static const struct {
    const char *symbol;
    void (*run)(void);
} cases[] = {
    { "virtpci_address_set_free", case_address_set_free },
    { "virtpci_address_set_get_pluggability", case_get_pluggability },
    { "virtpci_address_set_new_from_xml", case_address_set_new_from_xml },
    { "virtpci_address_set_new_from_xml_with_options", case_address_set_new_from_xml_with_options },
    { "virtpci_emulator_cap_names", case_emulator_cap_names },
    { "virtpci_address_set_plan_slot_attach", case_plan_slot_attach },
    { "virtpci_address_set_plan_slot_detach", case_plan_slot_detach },
    { "virtpci_address_set_release", case_address_set_release },
    { "virtpci_address_set_release_guest", case_address_set_release_guest },
    { "virtpci_address_set_release_slot_plan", case_release_slot_plan },
    { "virtpci_address_set_reserve", case_address_set_reserve },
    { "virtpci_address_set_reserve_next", case_address_set_reserve_next },
    { "virtpci_address_set_reserve_next_guest", case_address_set_reserve_next_guest },
    { "virtpci_address_set_reserve_next_with_preferences",
      case_address_set_reserve_next_with_preferences },
    { "virtpci_domain_assign_pci_addresses", case_domain_assign_pci_addresses },
    { "virtpci_domain_assign_pci_addresses_with_options",
      case_domain_assign_pci_addresses_with_options },
    { "virtpci_domain_add_missing_group_members", case_domain_add_missing_group_members },
    { "virtpci_domain_check_abi_stability", case_domain_check_abi_stability },
    { "virtpci_domain_explain_pci_addresses", case_domain_explain_pci_addresses },
    { "virtpci_host_clear_faults", case_host_faults },
    { "virtpci_host_faults_fired", case_host_faults },
    { "virtpci_host_free", case_host_free },
    { "virtpci_host_device_json", case_host_device_json },
    { "virtpci_host_get_driver", case_host_get_driver },
    { "virtpci_host_inject_fault", case_host_inject_fault },
    { "virtpci_host_get_vfio_cdev", case_host_get_vfio_cdev },
    { "virtpci_host_iommu_groups_json", case_host_iommu_groups_json },
    { "virtpci_host_open", case_host_open },
    { "virtpci_host_open_simulated", case_host_open_simulated },
    { "virtpci_host_set_module_loading", case_host_set_module_loading },
    { "virtpci_host_set_modules_dir", case_host_set_modules_dir },
    { "virtpci_host_set_reset_methods", case_host_set_reset_methods },
    { "virtpci_hostdev_check_domain", case_hostdev_check_domain },
    { "virtpci_hostdev_get_owner", case_hostdev_get_owner },
    { "virtpci_hostdev_list_devices", case_hostdev_list_devices },
    { "virtpci_hostdev_manager_free", case_hostdev_manager_free },
    { "virtpci_hostdev_manager_new", case_hostdev_manager_new },
    { "virtpci_hostdev_pci_node_device_detach", case_hostdev_pci_node_device_detach },
    { "virtpci_hostdev_pci_node_device_reattach", case_hostdev_pci_node_device_reattach },
    { "virtpci_hostdev_pci_node_device_reset", case_hostdev_pci_node_device_reset },
    { "virtpci_hostdev_prepare_domain", case_hostdev_prepare_domain },
    { "virtpci_hostdev_prepare_pci_devices", case_hostdev_prepare_pci_devices },
    { "virtpci_hostdev_prepare_pci_devices_ext", case_hostdev_prepare_pci_devices_ext },
    { "virtpci_hostdev_prepare_pci_devices_with_net", case_hostdev_prepare_pci_devices_with_net },
    { "virtpci_hostdev_reattach_domain", case_hostdev_reattach_domain },
    { "virtpci_hostdev_reattach_pci_devices", case_hostdev_reattach_pci_devices },
    { "virtpci_hostdev_status_json", case_hostdev_status_json },
    { "virtpci_hostdev_status_list_free", case_hostdev_status_list_free },
    { "virtpci_hostdev_update_active_pci_devices", case_hostdev_update_active_pci_devices },
    { "virtpci_last_error_code", case_last_error },
    { "virtpci_last_error_message", case_last_error },
    { "virtpci_pci_address_format", case_pci_address_format },
    { "virtpci_pci_address_get_iommu_group_addresses", case_get_iommu_group_addresses },
    { "virtpci_pci_address_get_iommu_group_num", case_get_iommu_group_num },
    { "virtpci_pci_address_iommu_group_iterate", case_iommu_group_iterate },
    { "virtpci_pci_address_list_free", case_pci_address_list_free },
    { "virtpci_pci_address_parse", case_pci_address_parse },
    { "virtpci_reset_last_error", case_last_error },
    { "virtpci_set_log_callback", case_set_log_callback },
    { "virtpci_slot_plan_free", case_slot_plan_free },
    { "virtpci_slot_plan_items", case_slot_plan_items },
    { "virtpci_slot_plan_slot", case_slot_plan_slot },
    { "virtpci_string_free", case_string_free },
    { "virtpci_version", case_version },
};

static void setup(void)
{
    if (!mkdtemp(sysfs_dir) || !mkdtemp(state_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    host = virtpci_host_open(sysfs_dir);
    mgr = host ? virtpci_hostdev_manager_new(host, state_dir) : NULL;
    set = virtpci_address_set_new_from_xml(GUEST);
    const char *one[1] = { NIC };
    if (!host || !mgr || !set || virtpci_address_set_plan_slot_attach(set, one, 1, &plan) < 0) {
        fprintf(stderr, "setup: %s\n", virtpci_last_error_message());
        exit(1);
    }
}

static void teardown(void)
{
    virtpci_slot_plan_free(plan);
    virtpci_address_set_free(set);
    virtpci_hostdev_manager_free(mgr);
    virtpci_host_free(host);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", sysfs_dir, state_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove the scratch directories\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s symbols.txt\n", argv[0]);
        return 2;
    }
    const char *scale = getenv("VIRTPCI_TEST_TIME_SCALE");
    if (scale && atoi(scale) > 0)
        watchdog_seconds *= (unsigned)atoi(scale);
    signal(SIGALRM, on_alarm);
    make_inputs();
    virtpci_set_log_callback(on_log, NULL);
    setup();

    FILE *symbols = fopen(argv[1], "r");
    if (!symbols) {
        perror(argv[1]);
        return 2;
    }
    char line[256];
    size_t n_symbols = 0;
    while (fgets(line, sizeof line, symbols)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!*line)
            continue;
        n_symbols++;
        size_t i = 0;
        while (i < sizeof cases / sizeof cases[0] && strcmp(cases[i].symbol, line) != 0)
            i++;
        CHECK(i < sizeof cases / sizeof cases[0], "%s has no bad-input case", line);
        if (i < sizeof cases / sizeof cases[0])
            cases[i].run();
    }
    fclose(symbols);
    CHECK(n_symbols > 40, "%zu symbols read", n_symbols);

    teardown();
    virtpci_set_log_callback(NULL, NULL);
    free_inputs();
    return check_exit_status("bad-input");
}
