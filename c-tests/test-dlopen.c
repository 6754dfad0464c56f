/* Load the library the way a daemon's plugin loader does, resolve every exported symbol listed
 * in the committed symbol list, and use the library through the resolved pointers. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "virtpci.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIBRARY SYMBOL-LIST\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    FILE *list = fopen(argv[2], "r");
    if (!list) {
        perror(argv[2]);
        return 1;
    }
    char name[256];
    int resolved = 0;
    while (fscanf(list, "%255s", name) == 1) {
        void *sym = dlsym(lib, name);
        CHECK(sym != NULL, "dlsym(%s): %s", name, dlerror());
        resolved += sym != NULL;
    }
    fclose(list);
    CHECK(resolved > 0, "no symbols resolved");

    /* POSIX's way of turning dlsym's result into a function pointer. */
    int (*parse)(const char *, VirtpciPciAddress *);
    char *(*format)(const VirtpciPciAddress *);
    int (*code)(void);
    *(void **)(&parse) = dlsym(lib, "virtpci_pci_address_parse");
    *(void **)(&format) = dlsym(lib, "virtpci_pci_address_format");
    *(void **)(&code) = dlsym(lib, "virtpci_last_error_code");
    if (parse && format && code) {
        VirtpciPciAddress a;
        CHECK(parse("0000:0a:1f.7", &a) == 0, "parse through dlsym");
        char *s = format(&a);
        CHECK_STR(s, "0000:0a:1f.7");
        free(s);
        CHECK(parse("0000:00:20.0", &a) == -1 && code() == VIRTPCI_ERR_INVALID_ARG,
              "error through dlsym");
    }
    /* -z nodelete: unloading must be harmless even after the library used thread-locals. */
    CHECK(dlclose(lib) == 0, "dlclose");
    printf("resolved %d symbols\n", resolved);
    return check_exit_status("test-dlopen");
}
