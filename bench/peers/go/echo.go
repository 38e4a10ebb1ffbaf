package main

// echo_serve: Go's net echo server for bench/loadgen (a goroutine per
// connection, as weft's loadgen --serve weft has a task per connection).
// It listens on 127.0.0.1:0, prints "PORT <n>" and serves until killed;
// loadgen measures it from outside.

import (
	"fmt"
	"net"
	"os"
)

func init() {
	registerOneshot(oneshot{name: "echo_serve", run: echoServe})
}

func echoServe(o oneshotOpts) ([]figure, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	fmt.Printf("PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 65536)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}(c)
	}
}
