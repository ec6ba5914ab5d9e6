module github.com/sharedenclave/sharedenclave

go 1.25.0
