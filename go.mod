module github.com/mcoad/mcoad

go 1.26
