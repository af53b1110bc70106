package inproc

// DataItem is the guide's DataItem: a record read from somewhere (the fields the Rust port has).
type DataItem struct {
	ID     uint64
	Value  float64
	Weight uint32
}

// ProcessedItem is the guide's ProcessedItem.
type ProcessedItem struct {
	ID    uint64
	Score float64
}

// ProcessItem is the port's: a little arithmetic per item, so the loop is not only copies.
func ProcessItem(item DataItem) ProcessedItem {
	return ProcessedItem{ID: item.ID, Score: item.Value*float64(item.Weight) + 1}
}

// ProcessLargeDataset is the guide's code as printed (应用层优化 › 切片预分配优化).
func ProcessLargeDataset(data []DataItem) []ProcessedItem {
	// 预分配切片容量，避免动态扩容
	result := make([]ProcessedItem, 0, len(data))

	for _, item := range data {
		processed := ProcessItem(item)
		result = append(result, processed)
	}

	return result
}

// ProcessLargeDatasetAppend is the code the guide's advice replaces: a nil slice grown by
// append (a new array and a copy at each growth).
func ProcessLargeDatasetAppend(data []DataItem) []ProcessedItem {
	var result []ProcessedItem
	for _, item := range data {
		result = append(result, ProcessItem(item))
	}
	return result
}

// Dataset is the port's: n items, values and weights cycling as in experiments/slice-prealloc.
func Dataset(n int) []DataItem {
	out := make([]DataItem, n)
	for i := range out {
		out[i] = DataItem{ID: uint64(i), Value: float64(i%97) * 0.5, Weight: uint32(i%7) + 1}
	}
	return out
}
