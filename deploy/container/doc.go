// Package container holds dcep's image (Containerfile) and its build script;
// its test builds the static binaries the image copies, checks they need no
// dynamic loader, checks the Containerfile, and builds the image with podman
// where podman is installed.
package container
