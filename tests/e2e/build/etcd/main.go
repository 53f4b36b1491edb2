// Command etcd is a thin KSI wrapper so that the etcd server can be built
// from the go.etcd.io/etcd/server/v3 module (which has no main package).
// build-cache.sh copies this file into a throwaway module in the cache dir.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
