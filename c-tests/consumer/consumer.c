/* A program written as a daemon author would write it, outside the project: built with the
 * installed header and `pkg-config --cflags --libs virtpci`, or (with -DCONSUMER_DLOPEN) loading
 * libvirtpci.so.0 at run time. Both variants run the same checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <virtpci.h>

#ifdef CONSUMER_DLOPEN
#include <dlfcn.h>
static int (*p_parse)(const char *, VirtpciPciAddress *);
static char *(*p_format)(const VirtpciPciAddress *);
static int (*p_code)(void);
static const char *(*p_message)(void);
static void (*p_free)(char *);
#define LOAD(var, name) *(void **)(&var) = dlsym(lib, name)
#else
#define p_parse virtpci_pci_address_parse
#define p_format virtpci_pci_address_format
#define p_code virtpci_last_error_code
#define p_message virtpci_last_error_message
#define p_free virtpci_string_free
#endif

static int failures;

static void refuse(const char *text)
{
    VirtpciPciAddress a;
    int rc = p_parse(text, &a);
    int code = p_code();
    const char *msg = p_message();
    printf("parse(%s) -> %d, code %d, \"%s\"\n", text ? text : "NULL", rc, code, msg);
    if (rc != -1 || code == 0 || msg == NULL || strlen(msg) < 10)
        failures++;
}

int main(void)
{
#ifdef CONSUMER_DLOPEN
    void *lib = dlopen("libvirtpci.so.0", RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    LOAD(p_parse, "virtpci_pci_address_parse");
    LOAD(p_format, "virtpci_pci_address_format");
    LOAD(p_code, "virtpci_last_error_code");
    LOAD(p_message, "virtpci_last_error_message");
    LOAD(p_free, "virtpci_string_free");
    if (!p_parse || !p_format || !p_code || !p_message || !p_free) {
        fprintf(stderr, "dlsym failed\n");
        return 1;
    }
#endif
    VirtpciPciAddress a;
    if (p_parse("0000:0a:1f.7", &a) != 0) {
        fprintf(stderr, "parse failed: %s\n", p_message());
        return 1;
    }
    char *s = p_format(&a);
    printf("0000:0a:1f.7 -> %s\n", s ? s : "NULL");
    if (!s || strcmp(s, "0000:0a:1f.7") != 0)
        failures++;
    p_free(s);
    refuse("0000:00:20.0");
    refuse("0000:00:1f.8");
    refuse("");
    refuse(NULL);
    printf("%s\n", failures ? "consumer: FAIL" : "consumer: ok");
    return failures ? 1 : 0;
}
