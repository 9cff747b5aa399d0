module github.com/p2pshare/p2pshare

go 1.26.8
