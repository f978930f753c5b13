/* baton/version.h — the version every binary reports. */
#ifndef BATON_VERSION_H
#define BATON_VERSION_H

/* Returns the project version string ("0.1.0"); static storage, never NULL. */
const char *baton_version(void);

#endif
