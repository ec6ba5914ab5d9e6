module github.com/sharedenclave/sharedenclave

go 1.26.8
