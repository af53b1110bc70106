module perflab

go 1.26
