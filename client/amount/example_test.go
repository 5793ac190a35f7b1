package amount_test

import (
	"fmt"

	"github.com/dcep/dcep/client/amount"
)

func ExampleParse() {
	fen, err := amount.Parse("88.50")
	fmt.Println(fen, err)

	_, err = amount.Parse("88.505")
	fmt.Println(err)
	// Output:
	// 8850 <nil>
	// invalid amount "88.505": more than two decimals (0.01 yuan is the smallest unit)
}

func ExampleYuan() {
	fmt.Println(amount.Yuan(100_000_000), amount.Format(8850))
	// Output: ¥1,000,000.00 88.50
}
