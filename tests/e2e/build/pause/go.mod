module ksi-e2e/pause

go 1.22
