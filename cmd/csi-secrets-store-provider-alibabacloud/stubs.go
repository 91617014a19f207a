package main

import (
	"context"
	"errors"
)

func runMount(ctx context.Context, args []string) error { return errors.New("mount: not built yet") }
func runDoctor(ctx context.Context, args []string) int  { return 1 }
