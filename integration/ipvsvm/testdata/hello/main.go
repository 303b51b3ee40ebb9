// Command hello is a payload binary for the harness's own test.
package main

import "fmt"

func main() { fmt.Println("hello from the VM") }
